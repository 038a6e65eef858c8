"""The durable inbox and outbox of channel messages, in ``inbox.sqlite3`` on the volume.

A message is written here before the adapter hears it was accepted, and a reply is written
here in the same transaction that marks its message done, so a crash at any point loses
nothing: a message still ``pending`` after a restart is answered then (its turn may run a
second time, if the crash came after the model answered but before the reply was stored),
and a reply not yet ``sent`` is delivered again. ``(channel, message_id)`` is unique: a
replayed message is reported as a duplicate and never answered twice.

Each message carries its *lane*, the session key it belongs to; messages of one lane are
answered one at a time, in the order they arrived (``seq``).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from tenant_gateway.channels.contract import InboundMessage, OutboundReply
from tenant_gateway.settings import GatewayError
from tenant_gateway.volume_db import VolumeDatabase

INBOX_FILE = "inbox.sqlite3"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbound (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    message_id TEXT NOT NULL,
    lane TEXT NOT NULL,
    body BLOB NOT NULL,
    accepted_at REAL NOT NULL,
    done_at REAL,
    UNIQUE (channel, message_id)
);
CREATE INDEX IF NOT EXISTS inbound_pending ON inbound (seq) WHERE done_at IS NULL;
CREATE TABLE IF NOT EXISTS outbound (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    inbound_seq INTEGER NOT NULL UNIQUE REFERENCES inbound (seq),
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    sent_at REAL
);
CREATE INDEX IF NOT EXISTS outbound_unsent ON outbound (seq) WHERE sent_at IS NULL;
"""


class InboxError(GatewayError):
    """The inbox on the volume cannot be read or written."""

    status_code = 503
    problem = "inbox-unavailable"
    title = "Inbox unavailable"
    code = "inbox_unavailable"


@dataclass(frozen=True, slots=True)
class PendingMessage:
    seq: int
    lane: str
    message: InboundMessage


@dataclass(frozen=True, slots=True)
class UnsentReply:
    seq: int
    reply: OutboundReply


def _accept(db: sqlite3.Connection, message: InboundMessage, lane: str, now: float) -> bool:
    cursor = db.execute(
        "INSERT INTO inbound (channel, message_id, lane, body, accepted_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel, message_id) DO NOTHING",
        (message.channel, message.message_id, lane, msgspec.json.encode(message), now),
    )
    return cursor.rowcount == 1


def _complete(db: sqlite3.Connection, seq: int, reply: OutboundReply | None, now: float) -> None:
    if reply is not None:
        db.execute(
            "INSERT INTO outbound (inbound_seq, body, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (inbound_seq) DO NOTHING",
            (seq, msgspec.json.encode(reply), now),
        )
    db.execute("UPDATE inbound SET done_at = ? WHERE seq = ? AND done_at IS NULL", (now, seq))


class Inbox:
    """The tenant's inbox; open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = VolumeDatabase(path, _SCHEMA, SCHEMA_VERSION, InboxError, "inbox")

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def accept(self, message: InboundMessage, lane: str) -> bool:
        """Store ``message`` (committed when this returns); False if it was stored before."""
        now = time.time()
        return await self._db.transaction(
            lambda db: _accept(db, message, lane, now), "accept a channel message"
        )

    async def pending(self, limit: int = 500) -> list[PendingMessage]:
        """The oldest messages not yet answered, in arrival order."""

        def work(db: sqlite3.Connection) -> list[PendingMessage]:
            rows = db.execute(
                "SELECT seq, lane, body FROM inbound WHERE done_at IS NULL ORDER BY seq LIMIT ?",
                (limit,),
            )
            decode = msgspec.json.Decoder(InboundMessage).decode
            return [PendingMessage(seq, lane, decode(body)) for seq, lane, body in rows]

        return await self._db.run(work, "read pending channel messages")

    async def complete(self, seq: int, reply: OutboundReply | None) -> None:
        """Store the reply to message ``seq`` (None: it needs none) and mark it done."""
        now = time.time()
        await self._db.transaction(
            lambda db: _complete(db, seq, reply, now), "store a channel reply"
        )

    async def unsent(self, limit: int = 100) -> list[UnsentReply]:
        """The oldest replies not yet delivered, in the order they were made."""

        def work(db: sqlite3.Connection) -> list[UnsentReply]:
            rows = db.execute(
                "SELECT seq, body FROM outbound WHERE sent_at IS NULL ORDER BY seq LIMIT ?",
                (limit,),
            )
            decode = msgspec.json.Decoder(OutboundReply).decode
            return [UnsentReply(seq, decode(body)) for seq, body in rows]

        return await self._db.run(work, "read undelivered channel replies")

    async def mark_sent(self, seq: int) -> None:
        now = time.time()
        await self._db.run(
            lambda db: db.execute(
                "UPDATE outbound SET sent_at = ? WHERE seq = ? AND sent_at IS NULL", (now, seq)
            ),
            "mark a channel reply delivered",
        )
