"""The usage outbox: events not yet acknowledged by the control plane, in SQLite on the
tenant's volume (``usage.sqlite3`` beside the conversations).

:meth:`UsageOutbox.add` is called on the request path and does no I/O: it queues the event,
and the outbox's writer task commits everything queued since its last commit in one
transaction (group commit), so concurrent requests share commits and never wait for each
other's. :meth:`UsageOutbox.persisted` waits until everything queued so far is committed.
A failed commit keeps the events queued and is tried again.

The commit runs on the event loop itself, on a connection of its own that never waits for
a lock (``busy_timeout = 0``) and never checkpoints the WAL (``wal_autocheckpoint = 0``):
an insert into the WAL with ``synchronous = NORMAL`` takes tens of microseconds, less than
handing it to a thread and back. When delivery holds the write lock, that commit goes to the
outbox's thread instead, which waits for the lock. The thread also checkpoints the WAL every
``CHECKPOINT_EVERY`` events (``RESTART``: the WAL is then written over from its start, so it
does not grow while commits keep coming).

Delivery reads the oldest events (:meth:`UsageOutbox.oldest`) and removes them only when
the control plane has acknowledged them (:meth:`UsageOutbox.remove`); a batch the control
plane refuses as malformed is moved aside to ``usage_rejected`` (:meth:`UsageOutbox.set_aside`)
so it cannot block the events behind it, and stays there for an operator to look at.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import msgspec

from tenant_gateway.contract import UsageEvent
from tenant_gateway.settings import GatewayError

log = logging.getLogger(__name__)

USAGE_FILE = "usage.sqlite3"
SCHEMA_VERSION = 1
CHECKPOINT_EVERY = 250
"""Events committed from the event loop between two WAL checkpoints on the outbox's thread."""
RETRY_WRITE_AFTER = 1.0
"""Seconds before a failed commit of queued events is tried again."""

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    event BLOB NOT NULL,
    queued_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS usage_rejected (
    event_id TEXT PRIMARY KEY,
    event BLOB NOT NULL,
    reason TEXT NOT NULL,
    rejected_at REAL NOT NULL
);
"""


class OutboxError(GatewayError):
    """The usage outbox could not be opened or written."""

    problem = "usage-outbox-unavailable"
    title = "Usage outbox unavailable"
    code = "usage_outbox_unavailable"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One stored event: its place in the outbox and its JSON as stored."""

    seq: int
    event_id: str
    event: bytes


def _loop_connection(path: Path) -> sqlite3.Connection:
    """A second connection to the opened outbox, for commits on the event loop."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout = 0")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA wal_autocheckpoint = 0")
    return connection


def _open_database(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        connection.execute("PRAGMA busy_timeout = 5000")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise OutboxError(
                f"{path} has schema version {version}; this gateway knows {SCHEMA_VERSION}"
            )
        connection.executescript(_SCHEMA)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        connection.close()
        raise
    return connection


def _transaction(db: sqlite3.Connection, work: Callable[[], T]) -> T:
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work()
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return result


class UsageOutbox:
    """The tenant's undelivered usage events; :meth:`open` before use, :meth:`close` after."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._loop_connection: sqlite3.Connection | None = None
        """Inserts from the event loop: no lock waits, no checkpoints (see the module)."""
        self._since_checkpoint = 0
        self._executor: ThreadPoolExecutor | None = None
        self._queued: list[UsageEvent] = []
        self._queued_done: asyncio.Future[None] | None = None
        """Resolves when the events now in ``_queued`` are committed."""
        self._writing_done: asyncio.Future[None] | None = None
        """Resolves when the commit under way is done."""
        self._writer: asyncio.Task[None] | None = None
        self.on_stored: Callable[[int], None] = lambda _count: None
        """Told how many events a commit stored (the delivery wakes up when a batch is full)."""

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (and if need be create) ``usage.sqlite3``."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage-outbox")
        try:
            self._connection = await self._run(lambda: _open_database(self.path))
            self._loop_connection = _loop_connection(self.path)
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise OutboxError(f"cannot open {self.path}: {exc}") from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Commit what is queued (if the database lets us), then close."""
        if self._queued and self._connection is not None and not await self.persisted():
            log.error("%d usage events could not be stored and are lost", len(self._queued))
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        if self._loop_connection is not None:
            self._loop_connection.close()
            self._loop_connection = None
        executor, self._executor = self._executor, None
        connection, self._connection = self._connection, None
        if executor is None:
            return
        if connection is not None:
            await asyncio.get_running_loop().run_in_executor(executor, connection.close)
        executor.shutdown(wait=True)

    # -- writing ---------------------------------------------------------------------------

    def add(self, event: UsageEvent) -> None:
        """Queue ``event`` for the next commit; returns at once (call on the event loop)."""
        if self._executor is None:
            raise OutboxError("the usage outbox is not open")
        self._queued.append(event)
        if self._queued_done is None:
            self._queued_done = asyncio.get_running_loop().create_future()
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._write_queued(), name="usage-outbox-writer"
            )

    @property
    def queued(self) -> int:
        """Events added but not committed yet."""
        return len(self._queued)

    async def persisted(self) -> bool:
        """Wait until every event added so far is committed; False if the commit failed
        (the events stay queued and are tried again)."""
        waiting = self._queued_done or self._writing_done
        if waiting is None:
            return True
        try:
            await asyncio.shield(waiting)
        except (OutboxError, sqlite3.Error, OSError):
            return False
        return True

    async def _write_queued(self) -> None:
        try:
            while self._queued:
                events, done = self._queued, self._queued_done
                self._queued, self._queued_done = [], None
                self._writing_done = done
                try:
                    await self._commit(events)
                except (OutboxError, sqlite3.Error, OSError) as exc:
                    log.error(
                        "usage events not stored yet (%d kept in memory): %s", len(events), exc
                    )
                    self._requeue(events)
                    if done is not None and not done.done():
                        done.set_exception(OutboxError(str(exc)))
                        done.exception()  # retrieved: nobody need be waiting for it
                    await asyncio.sleep(RETRY_WRITE_AFTER)
                    continue
                if done is not None and not done.done():
                    done.set_result(None)
                self.on_stored(len(events))
        finally:
            self._writer = None
            self._writing_done = None

    async def _commit(self, events: list[UsageEvent]) -> None:
        await asyncio.sleep(0)  # let the requests that end in this same pass join the commit
        fast = self._loop_connection
        try:
            if fast is None:
                raise sqlite3.OperationalError("no connection on the event loop")
            self._insert(events, fast)
        except sqlite3.OperationalError:  # locked by delivery (or closed): wait on the thread
            await self._run(functools.partial(self._insert, events, None))
        self._since_checkpoint += len(events)
        if self._since_checkpoint >= CHECKPOINT_EVERY and self._executor is not None:
            self._since_checkpoint = 0
            self._executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            self._db().execute("PRAGMA wal_checkpoint(RESTART)")
        except (sqlite3.Error, OutboxError) as exc:
            log.warning("usage outbox: WAL checkpoint failed: %s", exc)

    def _requeue(self, events: list[UsageEvent]) -> None:
        self._queued[:0] = events
        if self._queued_done is None:
            self._queued_done = asyncio.get_running_loop().create_future()

    def _insert(self, events: Sequence[UsageEvent], db: sqlite3.Connection | None) -> None:
        db = db or self._db()
        now = time.time()
        rows = [(e.id, msgspec.json.encode(e), now) for e in events]
        _transaction(
            db,
            lambda: db.executemany(
                "INSERT OR IGNORE INTO usage_outbox (event_id, event, queued_at) VALUES (?, ?, ?)",
                rows,
            ),
        )

    # -- delivery --------------------------------------------------------------------------

    async def oldest(self, limit: int) -> list[OutboxEntry]:
        """Up to ``limit`` stored events, oldest first."""
        return await self._run(lambda: self._oldest(limit))

    def _oldest(self, limit: int) -> list[OutboxEntry]:
        cursor = self._db().execute(
            "SELECT seq, event_id, event FROM usage_outbox ORDER BY seq LIMIT ?", (limit,)
        )
        return [OutboxEntry(seq, event_id, bytes(event)) for seq, event_id, event in cursor]

    async def count(self) -> int:
        """Stored events not yet acknowledged."""
        return await self._run(
            lambda: int(self._db().execute("SELECT COUNT(*) FROM usage_outbox").fetchone()[0])
        )

    async def remove(self, entries: Sequence[OutboxEntry]) -> None:
        """Forget ``entries``: the control plane has acknowledged them."""
        db = self._db()
        seqs = [(e.seq,) for e in entries]
        await self._run(
            lambda: _transaction(
                db, lambda: db.executemany("DELETE FROM usage_outbox WHERE seq = ?", seqs)
            )
        )

    async def set_aside(self, entries: Sequence[OutboxEntry], reason: str) -> None:
        """Move ``entries`` to ``usage_rejected``: the control plane refused them for good."""
        db = self._db()
        now = time.time()

        def move() -> None:
            db.executemany(
                "INSERT OR REPLACE INTO usage_rejected (event_id, event, reason, rejected_at)"
                " VALUES (?, ?, ?, ?)",
                [(e.event_id, e.event, reason, now) for e in entries],
            )
            db.executemany("DELETE FROM usage_outbox WHERE seq = ?", [(e.seq,) for e in entries])

        await self._run(lambda: _transaction(db, move))

    # -- plumbing --------------------------------------------------------------------------

    async def _run(self, work: Callable[[], T]) -> T:
        if self._executor is None:
            raise OutboxError("the usage outbox is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise OutboxError("the usage outbox is not open")
        return self._connection
