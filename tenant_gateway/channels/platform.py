"""Replies to chats of the platform's one Telegram bot (channel ``telegram_platform``).

The bot lives in the control plane, which holds its token: it forwards a bound chat's
messages to this gateway's inbox, and this outlet hands the replies back, ``POST
PLATFORM_REPLY_PATH`` with the gateway's identity token, for the bot to send. A reply the
control plane cannot take now (it is unreachable, Telegram is rate limiting) raises
:class:`~tenant_gateway.channels.platforms.PlatformRefused`, so the worker keeps it and tries
again later; one it will never send (the chat was unbound, the person blocked the bot) is
acknowledged with ``delivered: false``, logged and not retried. While a turn runs, "typing…"
is asked for every few seconds.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import msgspec

from tenant_gateway.channels.contract import (
    PLATFORM_CHANNEL,
    PLATFORM_REPLY_PATH,
    PLATFORM_TYPING_PATH,
    ChatAction,
    InboundMessage,
    OutboundReply,
    ReplyReceipt,
)
from tenant_gateway.channels.outlets import repeating
from tenant_gateway.channels.pipeline import ChannelPipeline
from tenant_gateway.channels.platforms import PlatformRefused
from tenant_gateway.contract import GatewayBundle
from tenant_gateway.control_link import ControlPlaneLink, ControlPlaneUnreachable, problem_detail

log = logging.getLogger(__name__)

TYPING_EVERY = 4.5
"""Seconds between typing indicators: Telegram shows one for about five."""


class PlatformBotChannel:
    """The outlet of channel ``telegram_platform``."""

    def __init__(
        self, bundle: Callable[[], GatewayBundle], identity_dir: Path, timeout: float = 15.0
    ) -> None:
        self.link = ControlPlaneLink(
            bundle, identity_dir, timeout, purpose="send the platform bot's replies through"
        )
        self._pipeline: ChannelPipeline | None = None

    async def start(self, pipeline: ChannelPipeline) -> None:
        self._pipeline = pipeline
        pipeline.attach(PLATFORM_CHANNEL, self)

    async def stop(self) -> None:
        if self._pipeline is not None:
            self._pipeline.detach(PLATFORM_CHANNEL, self)
            self._pipeline = None
        await self.link.close()

    async def send(self, reply: OutboundReply) -> None:
        receipt = await self._post(PLATFORM_REPLY_PATH, msgspec.json.encode(reply))
        if not receipt.delivered:
            log.warning(
                "a reply to platform-bot chat %s is dropped: %s", reply.chat_id, receipt.detail
            )

    def working(self, message: InboundMessage) -> contextlib.AbstractAsyncContextManager[None]:
        body = msgspec.json.encode(ChatAction(channel=PLATFORM_CHANNEL, chat_id=message.chat_id))

        async def typing() -> None:
            with contextlib.suppress(PlatformRefused):
                await self._post(PLATFORM_TYPING_PATH, body)

        return repeating(typing, TYPING_EVERY)

    async def _post(self, path: str, body: bytes) -> ReplyReceipt:
        try:
            response = await self.link.post(path, body)
        except ControlPlaneUnreachable as exc:
            raise PlatformRefused(str(exc)) from None
        if response.status_code != 200:
            raise PlatformRefused(
                f"the control plane answered {response.status_code}: {problem_detail(response)}"
            )
        try:
            return msgspec.json.decode(response.content, type=ReplyReceipt)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise PlatformRefused("the control plane's receipt was not understood") from None
