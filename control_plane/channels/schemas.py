"""What the channels API answers, and the outcomes of redeeming a code that the bot tells
its user (one Struct per outcome, tagged, so a caller matches on the type)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec


class Channel(StrEnum):
    TELEGRAM_PLATFORM = "telegram_platform"
    """The platform's one Telegram bot, shared by every tenant."""


class BindingStatus(StrEnum):
    ACTIVE = "active"
    """The chat's messages go to the tenant's gateway."""
    TENANT_GONE = "tenant_gone"
    """The tenant is being deleted or was deleted; nothing is forwarded."""


class PairingCode(msgspec.Struct, kw_only=True):
    code: str
    """Shown in this answer only; the control plane keeps only its digest."""
    expires_at: datetime
    instructions: str


class ChannelBindingRead(msgspec.Struct, kw_only=True):
    id: str
    channel: Channel
    chat_id: str
    display_name: str
    status: BindingStatus
    created_at: datetime


class Bound(msgspec.Struct, kw_only=True, tag="bound"):
    """The chat is bound to the code's tenant (or already was, to the same tenant)."""

    tenant_id: str
    binding_id: str


class Expired(msgspec.Struct, kw_only=True, tag="expired"):
    """The code's ten minutes are over; the tenant asks for a new one."""


class AlreadyUsed(msgspec.Struct, kw_only=True, tag="already_used"):
    """The code paired a chat already; codes work once."""


class UnknownCode(msgspec.Struct, kw_only=True, tag="unknown"):
    """No such code (mistyped, or made up)."""


class BoundElsewhere(msgspec.Struct, kw_only=True, tag="bound_elsewhere"):
    """The chat is bound to another tenant; that tenant unbinds it first. The code is kept."""


class RateLimited(msgspec.Struct, kw_only=True, tag="rate_limited"):
    """Too many wrong codes from this chat (or channel-wide) lately."""

    retry_after: int
    """Seconds until the chat may try again."""


Redemption = Bound | Expired | AlreadyUsed | UnknownCode | BoundElsewhere | RateLimited
