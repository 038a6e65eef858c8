"""The tenant's own Telegram bot (aiogram 3), running in the gateway while the tenant holds a
``telegram_bot`` credential; a stored, rotated or deleted token takes effect without a restart.

Updates arrive by long polling (``getUpdates``, the embedded default) or, when the bundle
says the control plane registered a webhook (``channel_webhooks``: it has a public URL), as
webhook calls relayed to ``/internal/v1/channels/telegram/webhook`` after the control plane
checked Telegram's ``X-Telegram-Bot-Api-Secret-Token``. A message is stored in the inbox
before its update is confirmed (the next ``getUpdates`` offset, or the webhook's 200), so a
crash loses none, and one delivered again is answered once.

Private chats follow the DM policy of :mod:`~tenant_gateway.channels.telegram.access`; in
groups the bot answers messages that mention it or reply to it. Replies are rendered from
Markdown to Telegram HTML (:mod:`~tenant_gateway.channels.telegram.markup`; a piece Telegram
cannot parse is sent again as plain text) in pieces of at most 4096 UTF-16 code units, with
"typing…" shown while the assistant works; a reply handed over again (delivery is at least
once) goes on from its first piece not sent yet, which the volume's file remembers.
Telegram is reached at the bundle's ``provider_bases["telegram"]``
(``TENANTRY_TELEGRAM_API_BASE``). aiogram is imported only when a bot starts: a gateway
without one does not pay for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tenant_gateway.channels.contract import (
    ApprovedPeer,
    InboundMessage,
    OutboundReply,
    TelegramAccess,
    TelegramAccessUpdate,
)
from tenant_gateway.channels.outlets import repeating
from tenant_gateway.channels.pipeline import ChannelPipeline, WebhookAnswer, WebhookRequest
from tenant_gateway.channels.platforms import BadWebhookCall, ChannelNotConfigured, PlatformRefused
from tenant_gateway.channels.telegram.access import ACCESS_FILE, AccessStore
from tenant_gateway.channels.telegram.sending import TEXT_LIMIT, send_piece
from tenant_gateway.channels.telegram.session import connect, make_bot, poll
from tenant_gateway.channels.telegram.updates import command, mentions
from tenant_gateway.channels.text import split_text
from tenant_gateway.contract import GatewayBundle
from tenant_gateway.credentials import CredentialKeeper

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.types import Update

log = logging.getLogger(__name__)

CHANNEL = "telegram"
PROVIDER = "telegram_bot"
DEFAULT_BASE = "https://api.telegram.org"
TYPING_EVERY = 4.5
WEBHOOK_GRACE = 5.0
"""Seconds a bot in webhook mode waits for the control plane to register its webhook."""
WEBHOOK_CHECK_EVERY = 300.0
"""Seconds between checks that Telegram still has the bot's webhook."""
RETRY_MAX = 30.0

PAIRING_REPLY = (
    "Hi! This assistant answers the people its owner let in. Your code is {code}: send it to "
    "the owner, who approves it with `tenantry channels telegram approve <tenant> {code}`. "
    "It is valid for an hour."
)
APPROVED_REPLY = "You are in: the owner approved you. Send your message again."
GREETING = "Hi! Send me a message and I will answer."


class TelegramChannel:
    """The adapter: polling or webhook side, outlet of channel ``telegram``, DM policy."""

    def __init__(
        self,
        keeper: CredentialKeeper,
        bundle: Callable[[], GatewayBundle],
        volume_dir: Path,
        *,
        poll_timeout: int = 25,
        webhook_grace: float = WEBHOOK_GRACE,
    ) -> None:
        self._keeper = keeper
        self._bundle = bundle
        self.access = AccessStore(volume_dir / ACCESS_FILE)
        self.poll_timeout = poll_timeout
        self.webhook_grace = webhook_grace
        self._polling_for_webhook = False
        """True while a bot in webhook mode long-polls because Telegram has no webhook."""
        self.username: str | None = None
        self._pipeline: ChannelPipeline | None = None
        self._bot: Bot | None = None
        self._running: tuple[str, str] | None = None
        """(token, mode) of the bot running now."""
        self._task: asyncio.Task[None] | None = None

    # -- life -------------------------------------------------------------------------------

    async def start(self, pipeline: ChannelPipeline) -> None:
        self._pipeline = pipeline
        pipeline.attach(CHANNEL, self, self.webhook)
        await self.credentials_changed()

    async def stop(self) -> None:
        if self._pipeline is not None:
            self._pipeline.detach(CHANNEL, self)
            self._pipeline = None
        await self._stop_bot()
        await self.access.close()

    @property
    def mode(self) -> Literal["polling", "webhook", "off"]:
        if self._running is None:
            return "off"
        if self._running[1] == "webhook" and not self._polling_for_webhook:
            return "webhook"
        return "polling"

    async def credentials_changed(self, _bundle: GatewayBundle | None = None) -> None:
        """Start, restart or stop the bot to follow the tenant's token and the bundle."""
        if self._pipeline is None:
            return
        fields = self._keeper.find(PROVIDER)
        token = fields.get("token") if fields else None
        wanted = None
        if token:
            wanted = (token, "webhook" if self._bundle().channel_webhooks else "polling")
        if wanted == self._running:
            return
        await self._stop_bot()
        if wanted is None:
            return
        await self.access.open()  # the DM policy is read from memory for every message
        base = self._bundle().provider_bases.get("telegram", DEFAULT_BASE)
        self._bot = make_bot(wanted[0], base)
        self._running = wanted
        self._task = asyncio.create_task(self._run(wanted[1]), name="telegram bot")

    async def _stop_bot(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        bot, self._bot = self._bot, None
        self._running = None
        self._polling_for_webhook = False
        self.username = None
        if bot is not None:
            await bot.session.close()

    async def _run(self, mode: str) -> None:
        bot = self._required()

        async def setup(bot: Bot) -> None:
            if mode == "polling":
                await bot.delete_webhook()  # one the control plane registered before

        self.username = await connect(bot, setup, "telegram bot", RETRY_MAX)
        log.info("telegram bot @%s is running (%s)", self.username, mode)
        if mode == "polling":
            await poll(
                bot, self.handle, "telegram bot", timeout=self.poll_timeout, retry_max=RETRY_MAX
            )
        else:
            await self._follow_webhook(bot)

    async def _follow_webhook(self, bot: Bot) -> None:
        """Webhook mode: the control plane registers the webhook when the token is stored.
        While Telegram has none (the token was stored before the control plane had a public
        URL, Telegram could not be reached then, or someone removed it) the bot long-polls,
        so it still answers, and stops once a webhook is set."""
        from aiogram.exceptions import TelegramAPIError

        missing = False
        while True:
            try:
                registered = bool((await bot.get_webhook_info()).url)
            except TelegramAPIError as exc:
                log.warning("telegram bot: cannot check its webhook (%s)", exc)
                await asyncio.sleep(self.webhook_grace)  # not known: asked again soon
                continue
            if registered:
                missing = False
                await asyncio.sleep(WEBHOOK_CHECK_EVERY)
            elif not missing:
                missing = True  # the control plane may be registering it right now
                await asyncio.sleep(self.webhook_grace)
            else:
                log.warning(
                    "telegram bot @%s: Telegram has no webhook for it (storing the telegram_bot"
                    " credential again registers one); long-polling until it has",
                    self.username,
                )
                self._polling_for_webhook = True
                try:
                    await poll(
                        bot,
                        self.handle,
                        "telegram bot",
                        timeout=self.poll_timeout,
                        retry_max=RETRY_MAX,
                        until_webhook=True,
                    )
                finally:
                    self._polling_for_webhook = False
                log.info("telegram bot @%s: its webhook is set; polling stopped", self.username)
                missing = False

    def _required(self) -> Bot:
        if self._bot is None:
            raise ChannelNotConfigured("this tenant's Telegram bot is not running")
        return self._bot

    # -- updates ----------------------------------------------------------------------------

    async def webhook(self, request: WebhookRequest) -> WebhookAnswer:
        """A webhook call the control plane relayed (it checked Telegram's secret token)."""
        from aiogram.types import Update
        from pydantic import ValidationError

        bot = self._required()
        if request.method != "POST":
            raise BadWebhookCall("Telegram posts its updates")
        try:
            update = Update.model_validate_json(request.body, context={"bot": bot})
        except ValidationError as exc:
            raise BadWebhookCall(f"not a Telegram update: {exc.error_count()} problem(s)") from None
        await self.handle(update)
        return WebhookAnswer(200, b"{}")

    async def handle(self, update: Update) -> None:
        """Act on one update; returns once its message is stored (or answered, or ignored)."""
        message = update.message
        if message is None or message.text is None or message.from_user is None:
            return
        if self._pipeline is None:
            return
        chat, user = message.chat, message.from_user
        private = chat.type == "private"
        if private and not self.access.allows(user.id):
            if self.access.policy == "pairing":
                code = await self.access.request(user.id, user.full_name[:256])
                if code is not None:
                    await self._say(chat.id, PAIRING_REPLY.format(code=code))
            return
        bot_id = self._bot.id if self._bot is not None else None
        mentioned = not private and mentions(message, bot_id, self.username)
        if not private and not mentioned:
            return
        if private and command(message.text, self.username) == "/start":
            await self._say(chat.id, GREETING)
            return
        await self._pipeline.accept_message(
            InboundMessage(
                channel=CHANNEL,
                message_id=f"{chat.id}:{message.message_id}",
                chat_id=str(chat.id),
                peer_id=str(user.id),
                chat_type="dm" if private else "group",
                text=message.text,
                received_at=message.date.astimezone(UTC),
                sender_name=user.full_name[:256] or None,
                mentioned=mentioned,
            )
        )

    async def _say(self, chat_id: int | str, text: str) -> None:
        """A message of the bot's own (pairing, greeting): best effort."""
        from aiogram.exceptions import TelegramAPIError

        try:
            await self._required().send_message(chat_id, text)
        except TelegramAPIError as exc:
            log.warning("telegram bot: could not answer chat %s: %s", chat_id, exc)

    # -- who may talk to the bot ------------------------------------------------------------

    async def describe(self) -> TelegramAccess:
        await self.access.open()
        return TelegramAccess(
            dm_policy=self.access.policy,
            allowlist=sorted(self.access.allowlist),
            approved=list(self.access.approved.values()),
            mode=self.mode,
            username=self.username,
        )

    async def update_access(self, change: TelegramAccessUpdate) -> TelegramAccess:
        await self.access.update(change)
        return await self.describe()

    async def approve(self, code: str) -> ApprovedPeer:
        peer = await self.access.approve(code)
        if self._bot is not None:
            await self._say(peer.user_id, APPROVED_REPLY)
        return peer

    # -- replies ----------------------------------------------------------------------------

    async def send(self, reply: OutboundReply) -> None:
        from aiogram.exceptions import (
            TelegramAPIError,
            TelegramBadRequest,
            TelegramForbiddenError,
            TelegramNotFound,
        )

        if self._bot is None:
            raise PlatformRefused("the tenant's Telegram bot is not running")
        key = reply.in_reply_to
        done = await self.access.pieces_sent(reply.chat_id, key) if key else 0
        pieces = split_text(reply.text, TEXT_LIMIT, utf16=True)
        for number, piece in enumerate(pieces, start=1):
            if number <= done:
                continue  # sent before this reply was handed over again
            try:
                await send_piece(self._required(), reply.chat_id, piece)
            except (TelegramForbiddenError, TelegramBadRequest, TelegramNotFound) as exc:
                # Blocked, chat gone, text refused even as plain: sending again will not help.
                log.warning("telegram bot: a reply to chat %s is dropped: %s", reply.chat_id, exc)
                return
            except TelegramAPIError as exc:
                raise PlatformRefused(f"Telegram did not take the reply: {exc}") from None
            if key:
                await self.access.record_sent(reply.chat_id, key, number)

    def working(self, message: InboundMessage) -> contextlib.AbstractAsyncContextManager[None]:
        async def typing() -> None:
            from aiogram.exceptions import TelegramAPIError

            if self._bot is not None:
                with contextlib.suppress(TelegramAPIError):
                    await self._bot.send_chat_action(message.chat_id, "typing")

        return repeating(typing, TYPING_EVERY)
