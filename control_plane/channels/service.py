"""The channel directory: pairing codes, and which tenant each platform-bot chat belongs to.

Re-pairing a chat that is bound to another tenant is refused (:class:`BoundElsewhere`), not
a move: whoever holds a code of tenant B must not be able to pull a chat away from tenant A
and its conversation history; A unbinds it first (``DELETE /api/v1/tenants/{id}/channels/
{binding_id}``), then the code works. A code of the chat's own tenant just confirms the
binding.

Redeeming happens in one platform-mode transaction (the bot does not know the tenant until
the code names it): the code row is locked, claimed with a conditional UPDATE (single use
even when two chats send it at once), and the binding inserted; the unique (channel, chat
id) constraint keeps a chat on one tenant even under concurrent redemptions. Every attempt
first takes a slot in the chat's and the channel's throttle windows; only a binding gives the
chat's slots back, so wrong, expired and used codes all count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane import audit
from control_plane.channels import codes
from control_plane.channels.schemas import (
    AlreadyUsed,
    BindingStatus,
    Bound,
    BoundElsewhere,
    Channel,
    ChannelBindingRead,
    Expired,
    PairingCode,
    RateLimited,
    Redemption,
    UnknownCode,
)
from control_plane.db.engine import Database
from control_plane.db.models import ChannelBindingRow, PairingCodeRow, TenantRow
from control_plane.db.values import aware, new_id, utcnow
from control_plane.errors import NotFoundError, TooManyAttempts
from control_plane.identity.throttle import LoginThrottle, MemoryThrottle, ThrottleLimits

CODE_LIFETIME = timedelta(minutes=10)
REDEEM_LIMITS = ThrottleLimits(per_account=5, per_address=1000, window=600.0, namespace="pairing")
"""Wrong codes per chat, and per channel (all chats together), in ten minutes."""
ISSUE_LIMITS = ThrottleLimits(
    per_account=10, per_address=30, window=600.0, namespace="pairing-codes"
)
"""Codes per tenant, and per caller, in ten minutes."""
GONE_STATES = frozenset({"deleting", "deleted"})
ROUTE_MEMORY = 10.0
"""Seconds a chat's tenant (or that it has none) is remembered: the platform bot looks it up
for every message and reply. Binding and unbinding here forget it at once; another replica
of the control plane follows within this time."""
MAX_DISPLAY_NAME = 256


class BindingNotFound(NotFoundError):
    problem_type = "https://tenantry.dev/problems/channel-binding-not-found"
    title = "Channel binding not found"


class ChannelDirectory:
    def __init__(
        self,
        db: Database,
        digests: Callable[[str], str],
        *,
        bot_username: str | None = None,
        redeem_throttle: LoginThrottle | None = None,
        issue_throttle: LoginThrottle | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.digest = digests
        self.bot_username = bot_username
        self.redeem_throttle = redeem_throttle or MemoryThrottle(REDEEM_LIMITS)
        self.issue_throttle = issue_throttle or MemoryThrottle(ISSUE_LIMITS)
        self.now = now
        self._routes: dict[tuple[str, str], tuple[str | None, float]] = {}

    # -- the tenant's side ------------------------------------------------------------------

    async def issue_code(self, tenant_id: str, created_by: str | None) -> PairingCode:
        """A new single-use code that binds a chat of the platform Telegram bot to the tenant."""
        try:
            await self.issue_throttle.reserve(tenant_id, created_by or "anonymous")
        except TooManyAttempts as exc:
            raise TooManyAttempts(
                "too many pairing codes asked for this tenant lately; use one already issued "
                f"or try again in {exc.retry_after} seconds",
                retry_after=exc.retry_after,
            ) from None
        code = codes.new_code()
        now = self.now()
        row = PairingCodeRow(
            id=new_id(),
            tenant_id=tenant_id,
            channel=Channel.TELEGRAM_PLATFORM,
            digest=self.digest(code),
            created_by=created_by,
            created_at=now,
            expires_at=now + CODE_LIFETIME,
            used_at=None,
            used_by_chat=None,
        )
        async with self.db.transaction(tenant=tenant_id) as session:
            session.add(row)
            audit.record(
                session,
                "channel.pairing_code.create",
                tenant_id=tenant_id,
                target=row.id,
                channel=row.channel,
            )
        return PairingCode(code=code, expires_at=row.expires_at, instructions=self._how_to(code))

    def _how_to(self, code: str) -> str:
        bot = f"@{self.bot_username}" if self.bot_username else "the platform bot"
        minutes = int(CODE_LIFETIME.total_seconds() // 60)
        return (
            f"In Telegram, send /start {code} to {bot} within {minutes} minutes. "
            "The code works once; that chat then talks to this tenant."
        )

    async def list_bindings(self, tenant_id: str) -> list[ChannelBindingRead]:
        async with self.db.transaction(tenant=tenant_id) as session:
            state = await session.scalar(select(TenantRow.state).where(TenantRow.id == tenant_id))
            rows = await session.scalars(
                select(ChannelBindingRow)
                .where(ChannelBindingRow.tenant_id == tenant_id)
                .order_by(ChannelBindingRow.created_at, ChannelBindingRow.id)
            )
            return [_binding(row, state) for row in rows]

    async def unbind(self, tenant_id: str, binding_id: str) -> None:
        """Unbind a chat: its messages no longer reach the tenant, and it may pair again."""
        async with self.db.transaction(tenant=tenant_id) as session:
            row = await session.get(ChannelBindingRow, binding_id)
            if row is None or row.tenant_id != tenant_id:
                raise BindingNotFound(f"no channel binding {binding_id!r} for this tenant")
            await session.delete(row)
            audit.record(
                session,
                "channel.unbind",
                tenant_id=tenant_id,
                target=row.id,
                channel=row.channel,
                chat_id=row.chat_id,
            )
        self._routes.pop((row.channel, row.chat_id), None)  # once it is gone for good

    # -- the bot's side ---------------------------------------------------------------------

    async def redeem(
        self, typed_code: str, channel: Channel, chat_id: int | str, display_name: str
    ) -> Redemption:
        """Bind ``chat_id`` to the tenant of the code its user sent; the outcome says what to
        tell them."""
        chat = str(chat_id)
        try:
            reservation = await self.redeem_throttle.reserve(f"{channel}:{chat}", str(channel))
        except TooManyAttempts as exc:
            return RateLimited(retry_after=exc.retry_after)
        code = codes.normalize(typed_code)
        if code is None:
            return UnknownCode()
        name = display_name.strip()[:MAX_DISPLAY_NAME]
        try:
            outcome = await self._redeem(self.digest(code), channel, chat, name)
        except IntegrityError:
            # Another redemption bound this chat at the same moment; this one now sees it.
            outcome = await self._redeem(self.digest(code), channel, chat, name)
        if isinstance(outcome, Bound):
            self._routes.pop((str(channel), chat), None)
            await self.redeem_throttle.succeeded(reservation)
        return outcome

    async def _redeem(self, digest: str, channel: Channel, chat: str, name: str) -> Redemption:
        now = self.now()
        async with self.db.transaction(platform="pair a chat: find the code's tenant") as session:
            found = await session.scalar(
                select(PairingCodeRow)
                .where(PairingCodeRow.digest == digest, PairingCodeRow.channel == channel)
                .with_for_update()
            )
            if found is None:
                return UnknownCode()
            existing = await _binding_of(session, channel, chat)
            if found.used_at is not None:
                if (
                    found.used_by_chat == chat
                    and existing
                    and existing.tenant_id == found.tenant_id
                ):
                    # The same /start again (Telegram redelivered it): the pairing stands.
                    return Bound(tenant_id=found.tenant_id, binding_id=existing.id)
                return AlreadyUsed()
            if aware(found.expires_at) <= now:
                return Expired()
            if existing is not None and existing.tenant_id != found.tenant_id:
                return BoundElsewhere()
            if not await _claim(session, found, chat, now):
                return AlreadyUsed()
            binding = existing or _new_binding(found.tenant_id, channel, chat, name, now)
            binding.display_name = name or binding.display_name
            session.add(binding)
            await session.flush()
            audit.record(
                session,
                "channel.bind",
                tenant_id=found.tenant_id,
                target=binding.id,
                channel=channel,
                chat_id=chat,
                pairing_code=found.id,
            )
            return Bound(tenant_id=found.tenant_id, binding_id=binding.id)

    async def tenant_for(self, channel: Channel, chat_id: int | str) -> str | None:
        """The tenant the chat is bound to, if it is and the tenant is not being deleted."""
        key = (str(channel), str(chat_id))
        remembered = self._routes.get(key)
        if remembered is not None and remembered[1] > time.monotonic():
            return remembered[0]
        tenant_id = await self._tenant_for(channel, chat_id)
        if len(self._routes) > 100_000:
            self._routes.clear()
        self._routes[key] = (tenant_id, time.monotonic() + ROUTE_MEMORY)
        return tenant_id

    async def _tenant_for(self, channel: Channel, chat_id: int | str) -> str | None:
        async with self.db.transaction(platform="route a chat to its tenant") as session:
            found = (
                await session.execute(
                    select(TenantRow.id, TenantRow.state)
                    .join(ChannelBindingRow, ChannelBindingRow.tenant_id == TenantRow.id)
                    .where(
                        ChannelBindingRow.channel == channel,
                        ChannelBindingRow.chat_id == str(chat_id),
                    )
                )
            ).first()
        if found is None or found[1] in GONE_STATES:
            return None
        return str(found[0])


async def _binding_of(session: AsyncSession, channel: str, chat: str) -> ChannelBindingRow | None:
    return await session.scalar(
        select(ChannelBindingRow).where(
            ChannelBindingRow.channel == channel, ChannelBindingRow.chat_id == chat
        )
    )


async def _claim(session: AsyncSession, code: PairingCodeRow, chat: str, now: datetime) -> bool:
    """Mark the code used; False when another redemption used it first."""
    claimed = await session.execute(
        update(PairingCodeRow)
        .where(PairingCodeRow.id == code.id, PairingCodeRow.used_at.is_(None))
        .values(used_at=now, used_by_chat=chat)
        .execution_options(synchronize_session=False)
    )
    return getattr(claimed, "rowcount", 0) == 1


def _new_binding(
    tenant_id: str, channel: str, chat: str, name: str, now: datetime
) -> ChannelBindingRow:
    return ChannelBindingRow(
        id=new_id(),
        tenant_id=tenant_id,
        channel=channel,
        chat_id=chat,
        display_name=name or chat,
        status=BindingStatus.ACTIVE,
        created_at=now,
    )


def _binding(row: ChannelBindingRow, tenant_state: str | None) -> ChannelBindingRead:
    status = BindingStatus(row.status)
    if tenant_state in GONE_STATES:
        status = BindingStatus.TENANT_GONE
    return ChannelBindingRead(
        id=row.id,
        channel=Channel(row.channel),
        chat_id=row.chat_id,
        display_name=row.display_name,
        status=status,
        created_at=aware(row.created_at),
    )
