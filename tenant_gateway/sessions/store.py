"""Sessions of channel conversations, in ``sessions.sqlite3`` on the tenant's volume.

A session key (:mod:`tenant_gateway.sessions.keys`) has at most one current session; its
turns are the session's history. Asking for the current session applies the reset policy
first: a session the policy says is over is ended (with its reason) and a new one begins,
so an idle or stale conversation never leaks into the next one. Ended sessions and their
turns stay on the volume.

The policy is read through a callable on every call, so it can change while the gateway
runs (the seam for per-tenant choices carried by the bundle later); the clock is injectable
so tests can move time.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from tenant_gateway.sessions.errors import SessionError
from tenant_gateway.sessions.resets import EndReason, ResetPolicy, expiry
from tenant_gateway.volume_db import VolumeDatabase

SESSIONS_FILE = "sessions.sqlite3"
SCHEMA_VERSION = 1

Message = dict[str, Any]
"""One OpenAI chat message (``role`` plus whatever else it has)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    started_at REAL NOT NULL,
    last_active_at REAL NOT NULL,
    ended_at REAL,
    end_reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS sessions_current ON sessions (key) WHERE ended_at IS NULL;
CREATE TABLE IF NOT EXISTS turns (
    session_id TEXT NOT NULL REFERENCES sessions (id),
    position INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (session_id, position)
) WITHOUT ROWID;
"""


class Session(msgspec.Struct, frozen=True):
    """One session of a key."""

    id: str
    key: str
    started_at: float
    last_active_at: float


def _new_session(db: sqlite3.Connection, key: str, now: float) -> Session:
    session = Session(
        id="ses_" + secrets.token_hex(12), key=key, started_at=now, last_active_at=now
    )
    db.execute(
        "INSERT INTO sessions (id, key, started_at, last_active_at) VALUES (?, ?, ?, ?)",
        (session.id, key, now, now),
    )
    return session


def _end(db: sqlite3.Connection, session_id: str, now: float, reason: EndReason) -> None:
    db.execute(
        "UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
        (now, reason, session_id),
    )


def _current_row(db: sqlite3.Connection, key: str) -> Session | None:
    row = db.execute(
        "SELECT id, key, started_at, last_active_at FROM sessions "
        "WHERE key = ? AND ended_at IS NULL",
        (key,),
    ).fetchone()
    return None if row is None else Session(*row)


def _current(db: sqlite3.Connection, key: str, policy: ResetPolicy, now: float) -> Session:
    session = _current_row(db, key)
    if session is not None:
        reason = expiry(policy, session.last_active_at, now)
        if reason is None:
            return session
        _end(db, session.id, now, reason)
    return _new_session(db, key, now)


def _history(db: sqlite3.Connection, session_id: str) -> list[Message]:
    cursor = db.execute(
        "SELECT content FROM turns WHERE session_id = ? ORDER BY position", (session_id,)
    )
    return [msgspec.json.decode(row[0]) for row in cursor]


def _append(
    db: sqlite3.Connection, session: Session, messages: Sequence[Message], now: float
) -> Session:
    last = db.execute(
        "SELECT MAX(position) FROM turns WHERE session_id = ?", (session.id,)
    ).fetchone()[0]
    start = 0 if last is None else last + 1
    db.executemany(
        "INSERT INTO turns (session_id, position, role, content, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [
            (session.id, start + n, str(m.get("role", "")), msgspec.json.encode(m).decode(), now)
            for n, m in enumerate(messages)
        ],
    )
    db.execute("UPDATE sessions SET last_active_at = ? WHERE id = ?", (now, session.id))
    return msgspec.structs.replace(session, last_active_at=now)


class SessionStore:
    """The tenant's sessions; open with :meth:`open`, close with :meth:`close`."""

    def __init__(
        self,
        path: Path,
        policy: Callable[[], ResetPolicy] = ResetPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._policy = policy
        self._clock = clock
        self._db = VolumeDatabase(path, _SCHEMA, SCHEMA_VERSION, SessionError, "sessions")

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def current(self, key: str) -> Session:
        """The key's current session: a new one if it had none or the policy ended it."""
        policy, now = self._policy(), self._clock()
        return await self._db.transaction(
            lambda db: _current(db, key, policy, now), f"read the session of {key}"
        )

    async def history(self, session_id: str) -> list[Message]:
        """Every turn of a session, in order."""
        return await self._db.run(lambda db: _history(db, session_id), "read a session's history")

    async def append(self, key: str, messages: Sequence[Message]) -> Session:
        """Add ``messages`` to the key's current session (starting one if the policy ended
        the last); the session they went to."""
        policy, now = self._policy(), self._clock()

        def work(db: sqlite3.Connection) -> Session:
            return _append(db, _current(db, key, policy, now), messages, now)

        return await self._db.transaction(work, f"append to the session of {key}")

    async def reset(self, key: str) -> Session:
        """End the key's current session (what ``/reset`` does); the new, empty one."""
        now = self._clock()

        def work(db: sqlite3.Connection) -> Session:
            session = _current_row(db, key)
            if session is not None:
                _end(db, session.id, now, "reset")
            return _new_session(db, key, now)

        return await self._db.transaction(work, f"reset the session of {key}")
