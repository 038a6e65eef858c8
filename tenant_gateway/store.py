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

import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from tenant_gateway import volume_db
from tenant_gateway.settings import GatewayError

DATABASE_FILE = "conversations.sqlite3"
SCHEMA_VERSION = 1

Message = dict[str, Any]
"""One OpenAI chat message as the client sent it (``role`` plus whatever else it has)."""

T = TypeVar("T")
log = logging.getLogger(__name__)

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
    connection = volume_db.connect(path)
    try:
        return _rows(connection, conversation_id)
    finally:
        connection.close()


class ConversationStore:
    """The tenant's conversations; open with :meth:`open`, then record and read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = volume_db.VolumeDatabase(
            path, _SCHEMA, SCHEMA_VERSION, StoreError, "conversations"
        )

    async def open(self) -> None:
        """Open (and if need be create) the database and its schema."""
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    @staticmethod
    def _record(
        db: sqlite3.Connection,
        conversation_id: str,
        messages: Sequence[Message],
        reply: Message | None,
    ) -> int:
        now = time.time()
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
        return len(rows)

    async def record(
        self, conversation_id: str, messages: Sequence[Message], reply: Message | None
    ) -> int:
        """Store a request's new turn and the reply to it; the number of rows written."""
        return await self._db.transaction(
            lambda db: self._record(db, conversation_id, messages, reply),
            f"write conversation {conversation_id}",
        )

    def drain(self, timeout: float = 10.0) -> None:
        """Block until queued writes are done (see :meth:`VolumeDatabase.drain`)."""
        self._db.drain(timeout)

    def record_soon(
        self, conversation_id: str, messages: Sequence[Message], reply: Message | None
    ) -> None:
        """:meth:`record` queued on the store's writer without waiting for it (later reads
        see it; a failure is logged): an answer need not wait for its memory to be written."""
        self._db.transaction_soon(
            lambda db: self._record(db, conversation_id, messages, reply),
            f"write conversation {conversation_id}",
            log,
        )

    async def read(self, conversation_id: str) -> list[StoredMessage]:
        """Every stored message of a conversation, in order."""
        return await self._db.run(
            lambda db: _rows(db, conversation_id), f"read conversation {conversation_id}"
        )
