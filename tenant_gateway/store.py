"""Conversation memory: each conversation's messages, in SQLite on the tenant's own volume.

A chat request carries the whole conversation so far; only what is new is stored: for a
conversation the store has not seen, every message of the request, otherwise the trailing
messages after the last ``assistant`` one (the new user or tool turn), then the reply.

SQLite is used through the standard library. One connection, owned by one worker thread,
does every write, so writes never block the event loop and never contend with each other;
WAL with ``synchronous=NORMAL`` keeps each commit cheap. Readers (tests, a history endpoint
to come) open their own connections.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from tenant_gateway.settings import GatewayError

DATABASE_FILE = "conversations.sqlite3"
SCHEMA_VERSION = 1

Message = dict[str, Any]
"""One OpenAI chat message as the client sent it (``role`` plus whatever else it has)."""

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    conversation_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (conversation_id, position)
) WITHOUT ROWID;
"""


class StoreError(GatewayError):
    """The conversation store could not be opened or written."""

    problem = "store-unavailable"
    title = "Conversation store unavailable"
    code = "store_unavailable"


class StoredMessage(msgspec.Struct, frozen=True):
    """One row of a conversation, read back."""

    conversation_id: str
    position: int
    role: str
    message: Message
    """The message object as stored (its JSON text, decoded)."""
    created_at: float


def new_turn(messages: Sequence[Message], *, new_conversation: bool) -> list[Message]:
    """The messages of a request the store does not have yet.

    All of them for a new conversation; otherwise those after the last ``assistant``
    message (all of them if there is none).
    """
    if new_conversation:
        return list(messages)
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "assistant":
            return list(messages[index + 1 :])
    return list(messages)


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout = 5000")
    return connection


def _open_database(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    connection = _connect(path)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path} has schema version {version}; this gateway knows {SCHEMA_VERSION}"
            )
        connection.executescript(_SCHEMA)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        connection.close()
        raise
    return connection


def _rows(connection: sqlite3.Connection, conversation_id: str) -> list[StoredMessage]:
    cursor = connection.execute(
        "SELECT conversation_id, position, role, content, created_at FROM messages "
        "WHERE conversation_id = ? ORDER BY position",
        (conversation_id,),
    )
    return [
        StoredMessage(
            conversation_id=row[0],
            position=row[1],
            role=row[2],
            message=msgspec.json.decode(row[3]),
            created_at=row[4],
        )
        for row in cursor
    ]


def read_conversation(path: Path, conversation_id: str) -> list[StoredMessage]:
    """Every stored message of a conversation, in order, read with a connection of its own."""
    connection = _connect(path)
    try:
        return _rows(connection, conversation_id)
    finally:
        connection.close()


class ConversationStore:
    """The tenant's conversations; open with :meth:`open`, then record and read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def _run(self, work: Callable[[], T]) -> T:
        if self._executor is None:
            raise StoreError("the conversation store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreError("the conversation store is not open")
        return self._connection

    async def open(self) -> None:
        """Open (and if need be create) the database and its schema."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conversations")
        try:
            self._connection = await self._run(lambda: _open_database(self.path))
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise StoreError(f"cannot open {self.path}: {exc}") from None
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

    def _record(
        self, conversation_id: str, messages: Sequence[Message], reply: Message | None
    ) -> int:
        db = self._db()
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            last = db.execute(
                "SELECT MAX(position) FROM messages WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()[0]
            rows = new_turn(messages, new_conversation=last is None)
            if reply is not None:
                rows.append(reply)
            start = 0 if last is None else last + 1
            db.executemany(
                "INSERT INTO messages (conversation_id, position, role, content, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        conversation_id,
                        start + offset,
                        str(message.get("role", "")),
                        msgspec.json.encode(message).decode(),
                        now,
                    )
                    for offset, message in enumerate(rows)
                ],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return len(rows)

    async def record(
        self, conversation_id: str, messages: Sequence[Message], reply: Message | None
    ) -> int:
        """Store a request's new turn and the reply to it; the number of rows written."""
        try:
            return await self._run(lambda: self._record(conversation_id, messages, reply))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write conversation {conversation_id}: {exc}") from None

    async def read(self, conversation_id: str) -> list[StoredMessage]:
        """Every stored message of a conversation, in order."""
        return await self._run(lambda: _rows(self._db(), conversation_id))
