"""The platform's one Telegram bot (``TENANTRY_TELEGRAM_PLATFORM_BOT_TOKEN``), shared by
every tenant; its token lives only in the control plane.

* ``/start CODE`` redeems a pairing code (:meth:`ChannelDirectory.redeem`): the chat is bound
  to the code's tenant, and the bot says what happened (bound, expired, used, unknown, bound
  to another tenant, too many attempts).
* A bound chat's text messages (in groups: only those that mention the bot or reply to it)
  go to its tenant's gateway as :class:`InboundMessage` of channel ``telegram_platform``
  through the :class:`~control_plane.channels.forwarding.Forwarder`, which keeps them while
  the gateway is down; an update is confirmed to Telegram only once its message is delivered
  or kept.
* Any other chat gets instructions on how to pair.
* The gateway's replies come back on ``POST PLATFORM_REPLY_PATH`` (:meth:`send_reply`) and
  are sent in pieces of at most 4096 UTF-16 code units; "typing…" on ``PLATFORM_TYPING_PATH``.

Updates arrive by long polling (``getUpdates``) in the embedded default, or, when
``TENANTRY_PUBLIC_URL`` is set, on ``POST /webhooks/telegram-platform``, which the bot
registers with ``setWebhook`` and a secret token derived from the control plane's token key
(Telegram sends it back in ``X-Telegram-Bot-Api-Secret-Token``; nothing stores it).
Telegram is reached through aiogram at ``TENANTRY_TELEGRAM_API_BASE``; aiogram is imported
only when a platform bot is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from datetime import UTC
from typing import TYPE_CHECKING

from control_plane.channels.forwarding import Forwarder
from control_plane.channels.schemas import (
    AlreadyUsed,
    Bound,
    BoundElsewhere,
    Channel,
    Expired,
    RateLimited,
    Redemption,
    UnknownCode,
)
from control_plane.channels.service import ChannelDirectory
from control_plane.channels.tenant_bots import check_secret
from control_plane.errors import GatewayUnavailable, InvalidInputError
from tenant_gateway.channels.contract import (
    PLATFORM_CHANNEL,
    InboundMessage,
    OutboundReply,
    ReplyReceipt,
)
from tenant_gateway.channels.telegram.sending import TEXT_LIMIT, send_piece
from tenant_gateway.channels.telegram.session import ALLOWED_UPDATES, connect, make_bot, poll
from tenant_gateway.channels.telegram.updates import command, mentions
from tenant_gateway.channels.text import split_text

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.types import Message, Update

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/telegram-platform"
SENT_MEMORY = 10_000
"""Replies remembered as sent (tenant, chat, message answered), so a reply the gateway hands
over twice (its delivery is at least once) is sent once."""

INSTRUCTIONS = (
    "Hi! This chat is not connected to an assistant yet. Ask the owner of your workspace "
    "for a pairing code, then send /start CODE here."
)
OUTCOMES: dict[type[Redemption], str] = {
    Bound: "Connected: this chat now talks to your assistant. Send a message to begin.",
    Expired: "That code has expired. Ask for a new one and send /start CODE again.",
    AlreadyUsed: "That code has been used already. Codes work once: ask for a new one.",
    UnknownCode: "That code is not valid. Check it and send /start CODE again.",
    BoundElsewhere: (
        "This chat is connected to another workspace. Disconnect it there first, "
        "then send the code again."
    ),
}


class PlatformBotUnavailable(GatewayUnavailable):
    """Telegram did not take the call now (down, rate limiting); worth trying again later."""

    problem_type = "https://tenantry.dev/problems/telegram-unavailable"
    title = "Telegram unavailable"


class PlatformBot:
    """The bot's polling or webhook side, and its sending side. Does nothing without a
    token: :attr:`enabled` is False and replies are answered ``delivered: false``."""

    def __init__(
        self,
        token: str | None,
        api_base: str,
        directory: ChannelDirectory,
        forwarder: Forwarder,
        *,
        webhook_secret: str,
        public_url: str | None = None,
        poll_timeout: int = 25,
        retry_max: float = 30.0,
    ) -> None:
        self._token = token
        self.api_base = api_base.rstrip("/")
        self.directory = directory
        self.forwarder = forwarder
        self._secret = webhook_secret
        self.webhook_url = f"{public_url.rstrip('/')}{WEBHOOK_PATH}" if public_url else None
        self.poll_timeout = poll_timeout
        self.retry_max = retry_max
        self.username: str | None = None
        """The bot's @username, once Telegram told it (``getMe``)."""
        self.ready = asyncio.Event()
        """Set once the bot is connected: polling, or its webhook registered."""
        self._bot: Bot | None = None
        self._task: asyncio.Task[None] | None = None
        self._sent: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    def __repr__(self) -> str:
        return f"PlatformBot(enabled={self.enabled}, webhook={self.webhook_url is not None})"

    @property
    def enabled(self) -> bool:
        return self._token is not None

    @property
    def mode(self) -> str:
        return "webhook" if self.webhook_url else "polling"

    # -- life -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start forwarding and connect to Telegram in the background (a Telegram that cannot
        be reached at start is retried, it does not stop the control plane)."""
        if self._token is None:
            return
        self._bot = make_bot(self._token, self.api_base)
        await self.forwarder.start()
        self._task = asyncio.create_task(self._run(), name="platform bot")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.forwarder.stop()
        if self._bot is not None:
            await self._bot.session.close()
            self._bot = None

    async def _run(self) -> None:
        self.username = await connect(self._required(), self._setup, "platform bot", self.retry_max)
        log.info("platform bot @%s is connected (%s)", self.username, self.mode)
        self.ready.set()
        if self.webhook_url is None:
            await poll(
                self._required(),
                self.handle,
                "platform bot",
                timeout=self.poll_timeout,
                retry_max=self.retry_max,
            )

    async def _setup(self, bot: Bot) -> None:
        if self.webhook_url is not None:
            await bot.set_webhook(
                self.webhook_url, secret_token=self._secret, allowed_updates=ALLOWED_UPDATES
            )
        else:
            await bot.delete_webhook()

    def _required(self) -> Bot:
        if self._bot is None:
            raise PlatformBotUnavailable("no platform Telegram bot is running")
        return self._bot

    # -- updates ----------------------------------------------------------------------------

    def check_webhook_secret(self, presented: str | None) -> None:
        """Raise unless ``presented`` is the secret token registered with the webhook."""
        check_secret(presented, self._secret)

    async def handle_webhook(self, body: bytes) -> None:
        """A webhook call's body: one Update."""
        from aiogram.types import Update
        from pydantic import ValidationError

        bot = self._required()
        try:
            update = Update.model_validate_json(body, context={"bot": bot})
        except ValidationError as exc:
            raise InvalidInputError(
                f"not a Telegram update: {exc.error_count()} problem(s)"
            ) from None
        await self.handle(update)

    async def handle(self, update: Update) -> None:
        """Act on one update; returns once its message is delivered, kept or answered."""
        message = update.message
        if message is None or message.text is None or message.from_user is None:
            return
        chat = message.chat
        if command(message.text, self.username) == "/start":
            await self._pair(message, message.text.strip().partition(" ")[2].strip())
            return
        tenant_id = await self.directory.tenant_for(Channel.TELEGRAM_PLATFORM, chat.id)
        private = chat.type == "private"
        if tenant_id is None:
            if private:
                await self._say(chat.id, INSTRUCTIONS)
            return
        bot_id = self._bot.id if self._bot is not None else None
        mentioned = mentions(message, bot_id, self.username)
        if not private and not mentioned:
            return
        await self.forwarder.submit(
            tenant_id,
            InboundMessage(
                channel=PLATFORM_CHANNEL,
                message_id=f"{chat.id}:{message.message_id}",
                chat_id=str(chat.id),
                peer_id=str(message.from_user.id),
                chat_type="dm" if private else "group",
                text=message.text,
                received_at=message.date.astimezone(UTC),
                sender_name=message.from_user.full_name[:256] or None,
                mentioned=mentioned,
            ),
        )

    async def _pair(self, message: Message, code: str) -> None:
        chat = message.chat
        if not code:
            bound = await self.directory.tenant_for(Channel.TELEGRAM_PLATFORM, chat.id)
            await self._say(chat.id, OUTCOMES[Bound] if bound else INSTRUCTIONS)
            return
        name = chat.title or (message.from_user.full_name if message.from_user else "") or ""
        outcome = await self.directory.redeem(code, Channel.TELEGRAM_PLATFORM, chat.id, name)
        if isinstance(outcome, RateLimited):
            text = f"Too many attempts. Try again in {outcome.retry_after} seconds."
        else:
            text = OUTCOMES[type(outcome)]
        await self._say(chat.id, text)

    async def _say(self, chat_id: int | str, text: str) -> None:
        """A message of the bot's own (instructions, pairing outcomes): best effort."""
        from aiogram.exceptions import TelegramAPIError

        try:
            await self._required().send_message(chat_id, text)
        except TelegramAPIError as exc:
            log.warning("platform bot: could not answer chat %s: %s", chat_id, exc)

    # -- the gateways' replies --------------------------------------------------------------

    async def send_reply(self, tenant_id: str, reply: OutboundReply) -> ReplyReceipt:
        """Send a tenant's reply to its chat; :class:`PlatformBotUnavailable` if Telegram did
        not take it now, ``delivered: false`` if it never will."""
        refused = await self._refusal(tenant_id, reply.channel, reply.chat_id)
        if refused is not None:
            return refused
        key = (tenant_id, reply.chat_id, reply.in_reply_to or "")
        if reply.in_reply_to and key in self._sent:
            return ReplyReceipt(delivered=True, detail="sent before")
        for piece in split_text(reply.text, TEXT_LIMIT, utf16=True):
            refused = await self._send(reply.chat_id, piece)
            if refused is not None:
                return refused
        if reply.in_reply_to:
            self._sent[key] = None
            while len(self._sent) > SENT_MEMORY:
                self._sent.popitem(last=False)
        return ReplyReceipt(delivered=True)

    async def show_typing(self, tenant_id: str, channel: str, chat_id: str) -> ReplyReceipt:
        refused = await self._refusal(tenant_id, channel, chat_id)
        if refused is not None:
            return refused
        from aiogram.exceptions import TelegramAPIError

        try:
            await self._required().send_chat_action(chat_id, "typing")
        except TelegramAPIError as exc:
            return ReplyReceipt(delivered=False, detail=f"Telegram: {exc.message}")
        return ReplyReceipt(delivered=True)

    async def _refusal(self, tenant_id: str, channel: str, chat_id: str) -> ReplyReceipt | None:
        if not self.enabled:
            return ReplyReceipt(delivered=False, detail="no platform Telegram bot is configured")
        if channel != PLATFORM_CHANNEL:
            return ReplyReceipt(
                delivered=False, detail=f"channel {channel!r} is not the platform bot's"
            )
        if await self.directory.tenant_for(Channel.TELEGRAM_PLATFORM, chat_id) != tenant_id:
            return ReplyReceipt(delivered=False, detail="the chat is not bound to this tenant")
        return None

    async def _send(self, chat_id: str, text: str) -> ReplyReceipt | None:
        from aiogram.exceptions import (
            TelegramAPIError,
            TelegramBadRequest,
            TelegramForbiddenError,
            TelegramNotFound,
            TelegramRetryAfter,
        )

        try:
            await send_piece(self._required(), chat_id, text)
        except TelegramRetryAfter as exc:
            raise PlatformBotUnavailable(
                "Telegram is rate limiting the platform bot", retry_after=exc.retry_after
            ) from None
        except (TelegramForbiddenError, TelegramBadRequest, TelegramNotFound) as exc:
            return ReplyReceipt(delivered=False, detail=f"Telegram refused it: {exc.message}")
        except TelegramAPIError as exc:
            raise PlatformBotUnavailable(
                f"Telegram did not take the reply: {type(exc).__name__}"
            ) from None
        return None
