"""The wire shape between channel adapters and the gateway's inbound pipeline.

An adapter (Telegram polling or webhook, later WhatsApp, Discord) turns what its channel
delivers into an :class:`InboundMessage` and posts it to ``INBOUND_PATH`` on the tenant's
gateway with the tenant's *inbound key*; the gateway answers with :class:`OutboundReply`
values the adapter sends back to the chat. The control plane imports this module, so it
imports nothing from the rest of the gateway.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

INBOUND_PATH = "/internal/v1/inbound"
WEBHOOK_PATH = "/internal/v1/channels/{channel}/webhook"
"""Where the control plane's public relay passes on a channel's webhook call, as it came."""
RELAYED_HEADERS = frozenset(
    {
        "content-type",
        "x-telegram-bot-api-secret-token",
        "x-hub-signature-256",
        "x-signature-ed25519",
        "x-signature-timestamp",
    }
)
"""The request headers the relay passes on (the channels' signatures); no others."""
PLATFORM_CHANNEL = "telegram_platform"
"""The channel of the platform's one Telegram bot: the control plane forwards a bound chat's
messages to the gateway under this name, and takes the replies back."""
PLATFORM_REPLY_PATH = "/internal/v1/gateways/{tenant_id}/replies"
"""``POST`` on the control plane, with the gateway's identity token: an :class:`OutboundReply`
of ``PLATFORM_CHANNEL`` for the platform bot to send; answered with a :class:`ReplyReceipt`."""
PLATFORM_TYPING_PATH = "/internal/v1/gateways/{tenant_id}/typing"
"""``POST`` on the control plane, with the identity token: a :class:`ChatAction`; the platform
bot shows "typing…" in that chat for a few seconds."""

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Text = Annotated[str, msgspec.Meta(max_length=64 * 1024)]


class InboundMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One message a person sent on a channel, as the adapter hands it to the gateway."""

    channel: Name
    """The channel kind and account (``telegram``, ``discord``...)."""
    message_id: Identifier
    """The channel's own id of the message, unique per channel: a message posted twice (an
    adapter retrying, a webhook replayed) is accepted once."""
    chat_id: Identifier
    """The chat the message was posted in (a DM or a group)."""
    peer_id: Identifier
    """Who sent it, as the channel identifies them."""
    chat_type: Literal["dm", "group"]
    text: Text
    received_at: datetime
    sender_name: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    mentioned: bool = False
    """The bot was mentioned or replied to; in a group, only such messages are answered."""


class OutboundReply(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the assistant answers, for the adapter to send to ``chat_id``."""

    channel: str
    chat_id: str
    text: str
    in_reply_to: str | None = None
    """The ``message_id`` answered; with ``channel`` it identifies the reply, so an adapter
    that is handed a reply twice (delivery is at least once) can send it once."""


class InboundReceipt(msgspec.Struct, frozen=True):
    """The gateway's answer to ``POST INBOUND_PATH``."""

    duplicate: bool
    """True: the message had been accepted before; nothing new happens."""


class ChatAction(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST PLATFORM_TYPING_PATH``."""

    channel: Name
    chat_id: Identifier


class ReplyReceipt(msgspec.Struct, frozen=True):
    """The control plane's answer to ``POST PLATFORM_REPLY_PATH`` (and the typing call)."""

    delivered: bool
    """False: the reply will never go out as it is (the chat is no longer bound to the
    tenant, the person blocked the bot, Telegram refused the text); ``detail`` says why, and
    sending it again would not help. A reply that may go out later is answered 503."""
    detail: str | None = None


# -- the tenant's own Telegram bot: who may talk to it ------------------------------------

TELEGRAM_ACCESS_PATH = "/internal/v1/telegram/access"
# Not under /internal/v1/channels/telegram/: a static segment there would hide the webhook
# route's {channel} from the router.
"""``GET`` / ``PUT`` (a :class:`TelegramAccessUpdate`) on the gateway, with the inbound key:
the tenant's own bot's DM policy, answered as :class:`TelegramAccess`."""
TELEGRAM_APPROVALS_PATH = "/internal/v1/telegram/approvals"
"""``POST`` (a :class:`TelegramApproval`) on the gateway, with the inbound key: let in the
person the bot gave that code; answered with the :class:`ApprovedPeer`. ``DELETE
…/approvals/{user_id}`` lets them out again."""

DmPolicy = Literal["pairing", "allowlist", "open"]
UserId = Annotated[int, msgspec.Meta(gt=0, lt=2**53)]


class ApprovedPeer(msgspec.Struct, frozen=True):
    user_id: int
    display_name: str
    approved_at: datetime


class TelegramAccess(msgspec.Struct, frozen=True):
    dm_policy: DmPolicy
    """``pairing`` (default): people the owner approved with the code the bot gave them, and
    the allowlist; ``allowlist``: only the allowlist; ``open``: everyone."""
    allowlist: list[int]
    """Telegram user ids let in without a code."""
    approved: list[ApprovedPeer]
    mode: Literal["polling", "webhook", "off"] = "off"
    """How the bot takes updates now; ``off``: the tenant holds no ``telegram_bot`` credential."""
    username: str | None = None
    """The bot's @username, once Telegram told it."""


class TelegramAccessUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    dm_policy: DmPolicy | None = None
    allowlist: Annotated[list[UserId], msgspec.Meta(max_length=1000)] | None = None


class TelegramApproval(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
