"""Who may talk to the tenant's own Telegram bot in private chats, kept on the tenant's
volume (``telegram.sqlite3``).

Under the ``pairing`` policy (the default) a person the bot does not know gets a code instead
of an answer; the tenant's owner approves that code (control-plane API or CLI) and from then
on the person is let in. Codes are 8 characters without look-alikes, valid for an hour, kept
only as SHA-256 digests; a person is told a new code at most once a minute. ``allowlist``
lets in only the listed user ids; ``open`` everyone. Groups are not under this policy: there
the bot answers whoever mentions it or replies to it.

Reads come from memory (a message's check costs no I/O); writes go through the volume's
writer thread and update memory once committed. The file is opened on first use.

The file also keeps how many pieces of each reply the bot sent (:meth:`AccessStore.
pieces_sent`), so a reply handed to the bot again (after Telegram failed midway, or a restart
before the reply was marked sent) goes on where it stopped instead of repeating pieces; these
records are forgotten after a week. The table is created on open, so files of earlier
gateways need no migration.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from tenant_gateway.channels.contract import (
    ApprovedPeer,
    DmPolicy,
    TelegramAccessUpdate,
)
from tenant_gateway.settings import GatewayError
from tenant_gateway.volume_db import VolumeDatabase

ACCESS_FILE = "telegram.sqlite3"
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
CODE_LIFETIME = 3600.0
TELL_EVERY = 60.0
VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS peers (
    user_id INTEGER PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    approved_at TEXT,
    code_digest TEXT,
    code_expires_at REAL,
    told_at REAL
);
CREATE INDEX IF NOT EXISTS peers_code ON peers (code_digest);
CREATE TABLE IF NOT EXISTS sent_replies (
    chat_id TEXT NOT NULL,
    in_reply_to TEXT NOT NULL,
    pieces INTEGER NOT NULL,
    sent_at REAL NOT NULL,
    PRIMARY KEY (chat_id, in_reply_to)
);
CREATE INDEX IF NOT EXISTS sent_replies_age ON sent_replies (sent_at);
"""
SENT_MEMORY = 7 * 86400.0
"""Seconds a reply's sent pieces are remembered (redeliveries come within minutes)."""
FORGET_EVERY = 3600.0


class AccessStoreError(GatewayError):
    status_code = 503
    problem = "telegram-access-unavailable"
    title = "Telegram access store unavailable"


class UnknownApproval(GatewayError):
    status_code = 404
    problem = "unknown-telegram-code"
    title = "Unknown Telegram code"
    error_type = "invalid_request_error"
    code = "unknown_telegram_code"


def _digest(code: str) -> str:
    normalized = "".join(c for c in code.upper() if c.isalnum())
    return hashlib.sha256(normalized.encode()).hexdigest()


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


class AccessStore:
    def __init__(self, path: Path) -> None:
        self.db = VolumeDatabase(path, SCHEMA, VERSION, AccessStoreError, "telegram-access")
        self.policy: DmPolicy = "pairing"
        self.allowlist: frozenset[int] = frozenset()
        self.approved: dict[int, ApprovedPeer] = {}
        self._opened = asyncio.Lock()
        self._open = False
        self._forgotten_at = 0.0

    async def open(self) -> None:
        """Open the file and read it into memory, once; every method does this first, so a
        gateway whose tenant has no bot neither opens the file nor keeps its thread."""
        if self._open:
            return
        async with self._opened:
            if not self._open:
                await self._read()
                self._open = True

    async def _read(self) -> None:
        await self.db.open()
        settings, approved = await self.db.run(_load, "read the Telegram access settings")
        self.policy = settings.get("dm_policy", "pairing")  # type: ignore[assignment]
        self.allowlist = frozenset(json.loads(settings.get("allowlist", "[]")))
        self.approved = {peer.user_id: peer for peer in approved}

    async def close(self) -> None:
        self._open = False
        await self.db.close()

    def allows(self, user_id: int) -> bool:
        if self.policy == "open" or user_id in self.allowlist:
            return True
        return self.policy == "pairing" and user_id in self.approved

    async def request(self, user_id: int, display_name: str) -> str | None:
        """A new code for a person not let in yet; None if they were told one within the
        last minute (so a chatty stranger does not get a reply per message)."""
        await self.open()
        code = new_code()
        now = time.time()

        def work(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT told_at FROM peers WHERE user_id = ?", (user_id,)).fetchone()
            if row is not None and row[0] is not None and now - row[0] < TELL_EVERY:
                return False
            db.execute(
                "INSERT INTO peers (user_id, display_name, code_digest, code_expires_at, told_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
                " display_name = excluded.display_name, code_digest = excluded.code_digest,"
                " code_expires_at = excluded.code_expires_at, told_at = excluded.told_at",
                (user_id, display_name, _digest(code), now + CODE_LIFETIME, now),
            )
            return True

        told = await self.db.transaction(work, "store a Telegram pairing request")
        return code if told else None

    async def approve(self, code: str) -> ApprovedPeer:
        """Let in the person the bot gave ``code``; :class:`UnknownApproval` if no one waits
        with it (mistyped, expired, or used)."""
        await self.open()
        digest, now = _digest(code), time.time()
        at = datetime.now(UTC)

        def work(db: sqlite3.Connection) -> ApprovedPeer | None:
            row = db.execute(
                "SELECT user_id, display_name, code_expires_at FROM peers WHERE code_digest = ?",
                (digest,),
            ).fetchone()
            if row is None or row[2] is None or row[2] < now:
                return None
            db.execute(
                "UPDATE peers SET approved_at = ?, code_digest = NULL, code_expires_at = NULL"
                " WHERE user_id = ?",
                (at.isoformat(), row[0]),
            )
            return ApprovedPeer(user_id=row[0], display_name=row[1], approved_at=at)

        peer = await self.db.transaction(work, "approve a Telegram user")
        if peer is None:
            raise UnknownApproval(
                "no one waits with this code: check it, or ask them to message the bot again "
                "for a new one (codes expire after an hour and work once)"
            )
        self.approved = {**self.approved, peer.user_id: peer}
        return peer

    async def revoke(self, user_id: int) -> bool:
        await self.open()

        def work(db: sqlite3.Connection) -> bool:
            gone = db.execute(
                "UPDATE peers SET approved_at = NULL WHERE user_id = ? AND approved_at IS NOT NULL",
                (user_id,),
            )
            return gone.rowcount > 0

        revoked = await self.db.transaction(work, "revoke a Telegram user")
        self.approved = {k: v for k, v in self.approved.items() if k != user_id}
        return revoked

    async def pieces_sent(self, chat_id: str, in_reply_to: str) -> int:
        """How many pieces of the reply to ``in_reply_to`` in ``chat_id`` were sent."""
        await self.open()

        def work(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT pieces FROM sent_replies WHERE chat_id = ? AND in_reply_to = ?",
                (chat_id, in_reply_to),
            ).fetchone()
            return int(row[0]) if row is not None else 0

        return await self.db.run(work, "read a Telegram reply's progress")

    async def record_sent(self, chat_id: str, in_reply_to: str, pieces: int) -> None:
        """``pieces`` pieces of that reply are sent (committed before this returns); records
        older than ``SENT_MEMORY`` are dropped at most once an hour."""
        await self.open()
        now = time.time()
        forget = now - self._forgotten_at > FORGET_EVERY
        if forget:
            self._forgotten_at = now

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO sent_replies (chat_id, in_reply_to, pieces, sent_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (chat_id, in_reply_to) DO UPDATE SET"
                " pieces = excluded.pieces, sent_at = excluded.sent_at",
                (chat_id, in_reply_to, pieces, now),
            )
            if forget:
                db.execute("DELETE FROM sent_replies WHERE sent_at < ?", (now - SENT_MEMORY,))

        await self.db.transaction(work, "record a sent Telegram reply")

    async def update(self, change: TelegramAccessUpdate) -> None:
        await self.open()
        values: dict[str, str] = {}
        if change.dm_policy is not None:
            values["dm_policy"] = change.dm_policy
        if change.allowlist is not None:
            values["allowlist"] = json.dumps(sorted(set(change.allowlist)))

        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )

        await self.db.transaction(work, "store the Telegram access settings")
        if change.dm_policy is not None:
            self.policy = change.dm_policy
        if change.allowlist is not None:
            self.allowlist = frozenset(change.allowlist)


def _load(db: sqlite3.Connection) -> tuple[dict[str, str], list[ApprovedPeer]]:
    settings = dict(db.execute("SELECT key, value FROM settings").fetchall())
    approved = [
        ApprovedPeer(
            user_id=row[0], display_name=row[1], approved_at=datetime.fromisoformat(row[2])
        )
        for row in db.execute(
            "SELECT user_id, display_name, approved_at FROM peers"
            " WHERE approved_at IS NOT NULL ORDER BY approved_at"
        )
    ]
    return settings, approved
