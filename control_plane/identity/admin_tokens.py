"""Platform admin bearer tokens: random values, shown once, stored as keyed digests.

The tokens carry 256 bits of randomness, so a fast keyed digest (:mod:`control_plane.vault.
digests`) is safe to store; the value is never written anywhere by the control plane except
the first token's file (mode 0600).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import func, select

from control_plane import audit
from control_plane.db.engine import Database
from control_plane.db.models import AdminTokenRow
from control_plane.db.values import new_id, utcnow
from control_plane.errors import AuthenticationError
from control_plane.vault.digests import TokenDigests

TOKEN_PREFIX = "tnt_admin_"  # noqa: S105 (a prefix, not a secret)


class AdminTokens:
    def __init__(self, db: Database, digests: TokenDigests) -> None:
        self.db = db
        self.digests = digests

    async def create(self, name: str) -> str:
        """Make a token and return its value; only its digest is kept."""
        value = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = new_id()
        async with self.db.transaction() as session:
            session.add(
                AdminTokenRow(
                    id=token_id,
                    name=name,
                    digest=self.digests.digest(value),
                    created_at=utcnow(),
                    revoked_at=None,
                )
            )
            audit.record(session, "admin_token.create", target=token_id, name=name)
        return value

    async def ensure_first(self, token_file: Path) -> str | None:
        """On a fresh installation, make the first token and write it to ``token_file``.

        Returns the value when one was made (so it can be shown once), else None.
        """
        async with self.db.transaction() as session:
            existing = await session.scalar(select(func.count()).select_from(AdminTokenRow))
        if existing:
            return None
        value = await self.create("initial")
        token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        os.chmod(token_file, 0o600)
        return value

    async def verify(self, authorization: str | None) -> str:
        """The token id for an ``Authorization: Bearer …`` header, or AuthenticationError."""
        if not authorization:
            raise AuthenticationError("missing Authorization header; send 'Bearer <admin token>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("Authorization must be 'Bearer <admin token>'")
        async with self.db.transaction() as session:
            row = await session.scalar(
                select(AdminTokenRow).where(AdminTokenRow.digest == self.digests.digest(token))
            )
        if row is None or row.revoked_at is not None:
            raise AuthenticationError("the admin token is not valid")
        return row.id
