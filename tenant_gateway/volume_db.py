"""One SQLite database on the tenant's volume, written by one worker thread.

The session and memory stores share the discipline of :mod:`tenant_gateway.store`: the
standard library's ``sqlite3``, one connection owned by one thread that does every read and
write (so the event loop never blocks and writes never contend), WAL with
``synchronous=NORMAL``, and a ``user_version`` the gateway refuses to go past. This module
holds that discipline once; each store brings its schema and its own error class.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from tenant_gateway.settings import GatewayError

T = TypeVar("T")


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are begun explicitly)."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout = 5000")
    return connection


def _open(path: Path, schema: str, version: int, error: type[GatewayError]) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    connection = connect(path)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        found = connection.execute("PRAGMA user_version").fetchone()[0]
        if found > version:
            raise error(f"{path} has schema version {found}; this gateway knows {version}")
        connection.executescript(schema)
        connection.execute(f"PRAGMA user_version = {int(version)}")
    except BaseException:
        connection.close()
        raise
    return connection


class VolumeDatabase:
    """``path`` opened with ``schema``; :meth:`run` executes work on the writer thread."""

    def __init__(
        self, path: Path, schema: str, version: int, error: type[GatewayError], name: str
    ) -> None:
        self.path = path
        self._schema = schema
        self._version = version
        self._error = error
        self._name = name
        self._connection: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def connection(self) -> sqlite3.Connection:
        """The writer's connection; use it only inside work given to :meth:`run`."""
        if self._connection is None:
            raise self._error(f"the {self._name} store is not open")
        return self._connection

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        try:
            self._connection = await self._submit(
                lambda: _open(self.path, self._schema, self._version, self._error)
            )
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise self._error(f"cannot open {self.path}: {exc}") from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        connection, self._connection = self._connection, None
        if executor is None:
            return
        if connection is not None:
            await asyncio.get_running_loop().run_in_executor(executor, connection.close)
        executor.shutdown(wait=True)  # idle by now: the close above ran on it

    async def _submit(self, work: Callable[[], T]) -> T:
        if self._executor is None:
            raise self._error(f"the {self._name} store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    async def run(self, work: Callable[[sqlite3.Connection], T], what: str) -> T:
        """``work(connection)`` on the writer thread; SQLite errors become the store's error,
        ``what`` saying what was being done."""
        try:
            return await self._submit(lambda: work(self.connection))
        except sqlite3.Error as exc:
            raise self._error(f"cannot {what}: {exc}") from None

    async def transaction(self, work: Callable[[sqlite3.Connection], T], what: str) -> T:
        """Like :meth:`run`, inside ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error)."""
        return await self.run(lambda db: _atomically(db, work), what)

    def drain(self, timeout: float = 10.0) -> None:
        """Block until the work queued so far has run; for callers on another thread than
        the event loop's (a test or a tool reading the file after a queued write)."""
        if self._executor is not None:
            self._executor.submit(lambda: None).result(timeout)

    def transaction_soon(
        self, work: Callable[[sqlite3.Connection], object], what: str, log: logging.Logger
    ) -> None:
        """Queue :meth:`transaction` work without waiting for it; a failure is logged.

        Queued now, on the one writer thread: whatever is run after this call (a read of
        what it writes included) runs after it."""
        if self._executor is None:
            raise self._error(f"the {self._name} store is not open")
        done = asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: _atomically(self.connection, work)
        )

        def report(future: asyncio.Future[object]) -> None:
            if future.cancelled():
                return
            exc = future.exception()
            if exc is not None:
                log.error("cannot %s: %s", what, exc)

        done.add_done_callback(report)


def _atomically(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return result
