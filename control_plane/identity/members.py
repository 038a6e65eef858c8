"""Who belongs to a tenant, and invitations to join it.

A membership gives one user one role in one tenant (``owner``, ``admin``, ``member``); a user
may belong to several tenants. A tenant always keeps at least one owner once it has one:
removing or demoting the last owner is refused (409).

Invitations reach people by email: the invitation token (``tnt_inv_…``, shown once, stored
as a keyed digest) is single-use, expires (7 days by default), and only the user whose
account has the invited email can accept it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane import audit
from control_plane.db.engine import Database
from control_plane.db.models import InvitationRow, MembershipRow, UserRow
from control_plane.db.values import aware, new_id, utcnow
from control_plane.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDenied
from control_plane.identity.scopes import Role
from control_plane.vault.digests import TokenDigests

INVITATION_PREFIX = "tnt_inv_"
DEFAULT_INVITATION_DAYS = 7
MAX_INVITATION_DAYS = 30


class _Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class MemberCreate(_Input):
    email: str = msgspec.field()
    role: Role = Role.MEMBER


class MemberUpdate(_Input):
    role: Role


class MemberRead(msgspec.Struct, kw_only=True):
    user_id: str
    email: str
    role: Role
    created_at: datetime


class InvitationCreate(_Input):
    email: str
    role: Role = Role.MEMBER
    expires_in_days: int = DEFAULT_INVITATION_DAYS


class InvitationRead(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    email: str
    role: Role
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None = None
    revoked_at: datetime | None = None


class CreatedInvitation(InvitationRead, kw_only=True):
    token: str
    """The invitation token; shown in this response only."""


class InvitationAccept(_Input):
    token: str


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or len(value) > 320 or " " in value:
        raise InvalidInputError(f"{email!r} is not an email address")
    return value


class MembershipService:
    def __init__(
        self, db: Database, digests: TokenDigests, now: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.digests = digests
        self.now = now

    # -- members ------------------------------------------------------------------------

    async def list_members(self, tenant_id: str) -> list[MemberRead]:
        async with self.db.transaction(tenant=tenant_id) as session:
            rows = await session.execute(
                select(MembershipRow, UserRow.email)
                .join(UserRow, UserRow.id == MembershipRow.user_id)
                .where(MembershipRow.tenant_id == tenant_id)
                .order_by(MembershipRow.created_at, MembershipRow.user_id)
            )
            return [_member(row, email) for row, email in rows]

    async def add(self, tenant_id: str, data: MemberCreate) -> MemberRead:
        email = normalize_email(data.email)
        async with self.db.transaction(tenant=tenant_id) as session:
            user = await session.scalar(select(UserRow).where(UserRow.email == email))
            if user is None or user.disabled_at is not None:
                raise NotFoundError(
                    f"no user with email {email!r}; invite them instead "
                    "(POST /api/v1/tenants/{id}/invitations)"
                )
            if await session.get(MembershipRow, (tenant_id, user.id)) is not None:
                raise ConflictError(f"{email} is already a member; PATCH to change the role")
            row = self._join(session, tenant_id, user.id, data.role)
            try:
                await session.flush()
            except IntegrityError:
                raise ConflictError(
                    f"{email} was just made a member; PATCH to change the role"
                ) from None
            audit.record(
                session, "member.add", tenant_id=tenant_id, target=user.id, role=str(data.role)
            )
            return _member(row, user.email)

    async def change_role(self, tenant_id: str, user_id: str, data: MemberUpdate) -> MemberRead:
        async with self.db.transaction(tenant=tenant_id) as session:
            row, email = await self._membership(session, tenant_id, user_id)
            if row.role == Role.OWNER and data.role != Role.OWNER:
                await self._keep_an_owner(session, tenant_id)
            if row.role != data.role:
                audit.record(
                    session,
                    "member.change_role",
                    tenant_id=tenant_id,
                    target=user_id,
                    role=str(data.role),
                    previous=row.role,
                )
                row.role = data.role
                row.updated_at = self.now()
            return _member(row, email)

    async def remove(self, tenant_id: str, user_id: str) -> None:
        async with self.db.transaction(tenant=tenant_id) as session:
            row, _email = await self._membership(session, tenant_id, user_id)
            if row.role == Role.OWNER:
                await self._keep_an_owner(session, tenant_id)
            await session.delete(row)
            audit.record(session, "member.remove", tenant_id=tenant_id, target=user_id)

    # -- invitations ------------------------------------------------------------------------

    async def invite(
        self, tenant_id: str, data: InvitationCreate, invited_by: str | None
    ) -> CreatedInvitation:
        email = normalize_email(data.email)
        if not 1 <= data.expires_in_days <= MAX_INVITATION_DAYS:
            raise InvalidInputError(f"expires_in_days must be between 1 and {MAX_INVITATION_DAYS}")
        token = INVITATION_PREFIX + secrets.token_urlsafe(32)
        now = self.now()
        row = InvitationRow(
            id=new_id(),
            tenant_id=tenant_id,
            email=email,
            role=data.role,
            digest=self.digests.digest(token),
            invited_by=invited_by,
            created_at=now,
            expires_at=now + timedelta(days=data.expires_in_days),
            accepted_at=None,
            accepted_by=None,
            revoked_at=None,
        )
        async with self.db.transaction(tenant=tenant_id) as session:
            session.add(row)
            audit.record(
                session, "invitation.create", tenant_id=tenant_id, target=row.id, role=data.role
            )
        return CreatedInvitation(**msgspec.structs.asdict(_invitation(row)), token=token)

    async def list_invitations(self, tenant_id: str) -> list[InvitationRead]:
        async with self.db.transaction(tenant=tenant_id) as session:
            rows = await session.scalars(
                select(InvitationRow)
                .where(InvitationRow.tenant_id == tenant_id)
                .order_by(InvitationRow.created_at)
            )
            return [_invitation(row) for row in rows]

    async def revoke_invitation(self, tenant_id: str, invitation_id: str) -> None:
        async with self.db.transaction(tenant=tenant_id) as session:
            row = await session.get(InvitationRow, invitation_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFoundError(f"no invitation {invitation_id!r} for this tenant")
            if row.accepted_at is not None:
                raise ConflictError("the invitation was already accepted")
            if row.revoked_at is None:
                row.revoked_at = self.now()
                audit.record(session, "invitation.revoke", tenant_id=tenant_id, target=row.id)

    async def accept(self, token: str, user_id: str) -> MemberRead:
        """Join the invitation's tenant as ``user_id``; the token works once."""
        digest = self.digests.digest(token.strip())
        tenant_id, invitation_id = await self._invitation_of(digest)
        try:
            return await self._accept_in(tenant_id, digest, user_id)
        except PermissionDenied:
            async with self.db.transaction(tenant=tenant_id) as session:
                audit.record(
                    session,
                    "invitation.accept",
                    tenant_id=tenant_id,
                    target=invitation_id,
                    outcome="denied",
                )
            raise
        except IntegrityError:
            # Another invitation of the same person to the same tenant was accepted at the
            # same moment and made the membership; this one now finds it and may raise the role.
            return await self._accept_in(tenant_id, digest, user_id)

    async def _invitation_of(self, digest: str) -> tuple[str, str]:
        """(tenant id, invitation id) of the invitation whose token has ``digest``."""
        async with self.db.transaction(platform="accept invitation: find its tenant") as session:
            found = (
                await session.execute(
                    select(InvitationRow.tenant_id, InvitationRow.id).where(
                        InvitationRow.digest == digest
                    )
                )
            ).first()
        if found is None:
            raise NotFoundError("no such invitation (check the token)")
        return found[0], found[1]

    async def _accept_in(self, tenant_id: str, digest: str, user_id: str) -> MemberRead:
        now = self.now()
        async with self.db.transaction(tenant=tenant_id) as session:
            invitation = await session.scalar(
                select(InvitationRow).where(InvitationRow.digest == digest)
            )
            user = await session.get(UserRow, user_id)
            if invitation is None or user is None:
                raise NotFoundError("no such invitation (check the token)")
            _check_redeemable(invitation, user, now)
            # Single use even under concurrent accepts: only one UPDATE finds it unused.
            claimed = await session.execute(
                update(InvitationRow)
                .where(InvitationRow.id == invitation.id, InvitationRow.accepted_at.is_(None))
                .values(accepted_at=now, accepted_by=user_id)
                .execution_options(synchronize_session=False)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                raise ConflictError("this invitation was already used")
            existing = await session.get(MembershipRow, (tenant_id, user_id))
            role = Role(invitation.role)
            if existing is None:
                row = self._join(session, tenant_id, user_id, role)
                await session.flush()
            else:
                row = existing
                if _rank(role) > _rank(Role(existing.role)):
                    existing.role = role
                    existing.updated_at = now
            audit.record(
                session, "invitation.accept", tenant_id=tenant_id, target=invitation.id, role=role
            )
            return _member(row, user.email)

    # -- helpers ------------------------------------------------------------------------

    def _join(
        self, session: AsyncSession, tenant_id: str, user_id: str, role: Role
    ) -> MembershipRow:
        now = self.now()
        row = MembershipRow(
            tenant_id=tenant_id, user_id=user_id, role=role, created_at=now, updated_at=now
        )
        session.add(row)
        return row

    async def _membership(
        self, session: AsyncSession, tenant_id: str, user_id: str
    ) -> tuple[MembershipRow, str]:
        found = (
            await session.execute(
                select(MembershipRow, UserRow.email)
                .join(UserRow, UserRow.id == MembershipRow.user_id)
                .where(MembershipRow.tenant_id == tenant_id, MembershipRow.user_id == user_id)
                .with_for_update(of=MembershipRow)
            )
        ).first()
        if found is None:
            raise NotFoundError(f"no member {user_id!r} in this tenant")
        return found[0], found[1]

    async def _keep_an_owner(self, session: AsyncSession, tenant_id: str) -> None:
        # Locks every owner row, so two owners demoting each other at once cannot both pass.
        owners = list(
            await session.scalars(
                select(MembershipRow.user_id)
                .where(MembershipRow.tenant_id == tenant_id, MembershipRow.role == Role.OWNER)
                .with_for_update()
            )
        )
        if len(owners) <= 1:
            raise ConflictError("a tenant keeps at least one owner; make someone else owner first")


def _check_redeemable(invitation: InvitationRow, user: UserRow, now: datetime) -> None:
    if invitation.revoked_at is not None:
        raise ConflictError("this invitation was revoked")
    if invitation.accepted_at is not None:
        raise ConflictError("this invitation was already used")
    if aware(invitation.expires_at) <= now:
        raise ConflictError("this invitation has expired; ask for a new one")
    if user.email != invitation.email:
        raise PermissionDenied("this invitation is for another email address")


def _rank(role: Role) -> int:
    return {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}[role]


def _member(row: MembershipRow, email: str) -> MemberRead:
    return MemberRead(
        user_id=row.user_id, email=email, role=Role(row.role), created_at=aware(row.created_at)
    )


def _invitation(row: InvitationRow) -> InvitationRead:
    return InvitationRead(
        id=row.id,
        tenant_id=row.tenant_id,
        email=row.email,
        role=Role(row.role),
        created_at=aware(row.created_at),
        expires_at=aware(row.expires_at),
        accepted_at=aware(row.accepted_at) if row.accepted_at else None,
        revoked_at=aware(row.revoked_at) if row.revoked_at else None,
    )
