"""API tokens for automation: scopes written in at creation, never beyond the owner's rights.

A token (``tnt_pat_…``) is shown once and kept as a keyed digest. Its scopes are checked
twice: at creation a user may only write scopes they hold right now, and at every use the
token's :class:`~control_plane.identity.scopes.Principal` carries both the owner's current
roles and the token's grants, so a demoted owner's token shrinks with them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import select

from control_plane import audit
from control_plane.db.engine import Database
from control_plane.db.models import ApiTokenRow, UserRow
from control_plane.db.values import aware, new_id, utcnow
from control_plane.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDenied,
)
from control_plane.identity.scopes import PLATFORM_SCOPES, Grant, Principal, parse_grants
from control_plane.vault.digests import TokenDigests

TOKEN_PREFIX = "tnt_pat_"  # noqa: S105 (a prefix, not a secret)
MAX_DAYS = 3650


class ApiTokenCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    scopes: list[str]
    expires_in_days: int | None = None


class ApiTokenRead(msgspec.Struct, kw_only=True):
    id: str
    name: str
    hint: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class CreatedApiToken(ApiTokenRead, kw_only=True):
    token: str
    """The token; shown in this response only."""


class TokenOwner(msgspec.Struct, kw_only=True):
    token_id: str
    user_id: str
    scopes: list[str]


def _holds(owner: Principal, grant: Grant) -> bool:
    """Whether the owner may write ``grant`` into a token: a narrowed grant needs the scope
    on that tenant; an unnarrowed tenant scope ("wherever I hold it", bounded again at each
    use) needs it on at least one tenant now; an installation-wide scope needs a platform
    admin."""
    if grant.tenant is not None:
        return owner.can(grant.scope, grant.tenant)
    if owner.platform_admin:
        return True
    return grant.scope not in PLATFORM_SCOPES and any(
        owner.can(grant.scope, tenant_id) for tenant_id in owner.roles
    )


def _read(row: ApiTokenRow) -> ApiTokenRead:
    return ApiTokenRead(
        id=row.id,
        name=row.name,
        hint=row.hint,
        scopes=list(row.scopes),
        created_at=aware(row.created_at),
        expires_at=aware(row.expires_at) if row.expires_at else None,
        last_used_at=aware(row.last_used_at) if row.last_used_at else None,
        revoked_at=aware(row.revoked_at) if row.revoked_at else None,
    )


class ApiTokenService:
    def __init__(
        self, db: Database, digests: TokenDigests, now: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.digests = digests
        self.now = now

    async def create(self, owner: Principal, data: ApiTokenCreate) -> CreatedApiToken:
        if owner.user_id is None or owner.grants is not None:
            raise PermissionDenied("API tokens are made by a logged-in user")
        if not data.name.strip() or len(data.name) > 100:
            raise InvalidInputError("name must be 1-100 characters")
        if not data.scopes:
            raise InvalidInputError("a token needs at least one scope")
        grants = parse_grants(data.scopes)
        beyond = sorted(str(g) for g in grants if not _holds(owner, g))
        if beyond:
            async with self.db.transaction() as session:
                audit.record(session, "api_token.create", outcome="denied", beyond=beyond)
            raise PermissionDenied(f"you do not hold these scopes yourself: {', '.join(beyond)}")
        if data.expires_in_days is not None and not 1 <= data.expires_in_days <= MAX_DAYS:
            raise InvalidInputError(f"expires_in_days must be between 1 and {MAX_DAYS}")
        value = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.now()
        row = ApiTokenRow(
            id=new_id(),
            user_id=owner.user_id,
            name=data.name.strip(),
            digest=self.digests.digest(value),
            hint=f"{TOKEN_PREFIX}…{value[-4:]}",
            scopes=sorted(str(g) for g in grants),
            created_at=now,
            expires_at=(
                now + timedelta(days=data.expires_in_days) if data.expires_in_days else None
            ),
            last_used_at=None,
            revoked_at=None,
        )
        async with self.db.transaction() as session:
            session.add(row)
            audit.record(session, "api_token.create", target=row.id, scopes=row.scopes)
        return CreatedApiToken(**msgspec.structs.asdict(_read(row)), token=value)

    async def list_tokens(self, user_id: str) -> list[ApiTokenRead]:
        async with self.db.transaction() as session:
            rows = await session.scalars(
                select(ApiTokenRow)
                .where(ApiTokenRow.user_id == user_id)
                .order_by(ApiTokenRow.created_at)
            )
            return [_read(row) for row in rows]

    async def revoke(self, user_id: str, token_id: str) -> None:
        async with self.db.transaction() as session:
            row = await session.get(ApiTokenRow, token_id)
            if row is None or row.user_id != user_id:
                raise NotFoundError(f"no API token {token_id!r} of yours")
            if row.revoked_at is None:
                row.revoked_at = self.now()
                audit.record(session, "api_token.revoke", target=row.id)

    async def owner_of(self, value: str) -> TokenOwner:
        """Who a presented token belongs to, or AuthenticationError."""
        now = self.now()
        async with self.db.transaction() as session:
            row = await session.scalar(
                select(ApiTokenRow).where(ApiTokenRow.digest == self.digests.digest(value))
            )
            if row is None or row.revoked_at is not None:
                raise AuthenticationError("the API token is not valid")
            if row.expires_at is not None and aware(row.expires_at) <= now:
                raise AuthenticationError("the API token has expired")
            user = await session.get(UserRow, row.user_id)
            if user is None or user.disabled_at is not None:
                raise AuthenticationError("the API token's owner is disabled")
            last = aware(row.last_used_at) if row.last_used_at else None
            if last is None or now - last > timedelta(minutes=1):  # cheap: at most once a minute
                row.last_used_at = now
            return TokenOwner(token_id=row.id, user_id=row.user_id, scopes=list(row.scopes))
