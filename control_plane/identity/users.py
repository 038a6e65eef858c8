"""User accounts: email + password (Argon2), optionally platform admins."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import msgspec
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from control_plane import audit
from control_plane.db.engine import Database
from control_plane.db.models import MembershipRow, UserRow
from control_plane.db.values import aware, new_id, utcnow
from control_plane.errors import ConflictError, InvalidInputError, NotFoundError
from control_plane.identity import passwords
from control_plane.identity.members import normalize_email
from control_plane.identity.scopes import Role


class UserCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: str
    password: str
    platform_admin: bool = False


class UserRead(msgspec.Struct, kw_only=True):
    id: str
    email: str
    platform_admin: bool
    created_at: datetime
    disabled: bool = False


class Membership(msgspec.Struct, kw_only=True):
    tenant_id: str
    role: Role


class Me(UserRead, kw_only=True):
    memberships: list[Membership]


def _read(row: UserRow) -> UserRead:
    return UserRead(
        id=row.id,
        email=row.email,
        platform_admin=row.platform_admin,
        created_at=aware(row.created_at),
        disabled=row.disabled_at is not None,
    )


class UserService:
    def __init__(self, db: Database, now: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.now = now

    async def create(self, data: UserCreate) -> UserRead:
        email = normalize_email(data.email)
        passwords.check_policy(data.password, email)
        hashed = await asyncio.to_thread(passwords.hash_password, data.password)
        now = self.now()
        row = UserRow(
            id=new_id(),
            email=email,
            password_hash=hashed,
            platform_admin=data.platform_admin,
            created_at=now,
            updated_at=now,
            disabled_at=None,
        )
        try:
            async with self.db.transaction() as session:
                if await session.scalar(select(UserRow.id).where(UserRow.email == email)):
                    raise ConflictError(f"a user with email {email!r} exists")
                session.add(row)
                await session.flush()
                audit.record(
                    session, "user.create", target=row.id, platform_admin=data.platform_admin
                )
        except IntegrityError:
            raise ConflictError(f"a user with email {email!r} exists") from None
        return _read(row)

    async def create_admin(self, email: str, password: str) -> UserRead:
        """A platform admin account: the first person, before anyone can log in."""
        return await self.create(UserCreate(email=email, password=password, platform_admin=True))

    async def get(self, user_id: str) -> UserRead:
        async with self.db.transaction() as session:
            row = await session.get(UserRow, user_id)
            if row is None:
                raise NotFoundError(f"no user {user_id!r}")
            return _read(row)

    async def me(self, user_id: str) -> Me:
        user = await self.get(user_id)
        async with self.db.transaction(platform="read a user's own memberships") as session:
            rows = await session.scalars(
                select(MembershipRow)
                .where(MembershipRow.user_id == user_id)
                .order_by(MembershipRow.tenant_id)
            )
            memberships = [Membership(tenant_id=r.tenant_id, role=Role(r.role)) for r in rows]
        return Me(**msgspec.structs.asdict(user), memberships=memberships)

    async def check_password(self, email: str, password: str) -> str | None:
        """The user id when ``password`` is the enabled account's password, else None;
        as slow for unknown emails as for known ones."""
        try:
            address = normalize_email(email)
        except InvalidInputError:
            address = ""
        async with self.db.transaction() as session:
            row = await session.scalar(select(UserRow).where(UserRow.email == address))
        stored = row.password_hash if row is not None else None
        ok = await asyncio.to_thread(passwords.verify_password, stored, password)
        if not ok or row is None or row.disabled_at is not None:
            return None
        if passwords.needs_rehash(row.password_hash):
            rehashed = await asyncio.to_thread(passwords.hash_password, password)
            async with self.db.transaction() as session:
                fresh = await session.get(UserRow, row.id)
                if fresh is not None:
                    fresh.password_hash = rehashed
                    fresh.updated_at = self.now()
        return row.id
