"""Where each channel's replies go, and what a chat shows while its message is answered.

An adapter running in the gateway (the tenant's own Telegram bot, WhatsApp, Discord, the
platform bot's relay) registers a :class:`ChannelOutlet` under its channel name; the worker
hands every reply to :meth:`Outlets.send`, which picks the outlet of the reply's channel,
and runs every turn inside :meth:`Outlets.working` (a typing indicator, for channels that
have one). A reply of a channel without an outlet goes to the fallback sink (the reply URL
of the settings, or a test's recorder); with no fallback either it stays in the outbox
(:class:`NoOutlet`) until an outlet for it is registered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from tenant_gateway.channels.contract import InboundMessage, OutboundReply
from tenant_gateway.settings import GatewayError

ReplySink = Callable[[OutboundReply], Awaitable[None]]
"""Sends one reply to its chat; returns once the channel took it, raises if it did not."""


class NoOutlet(GatewayError):
    """No adapter takes replies of this channel (yet)."""

    status_code = 503
    problem = "no-channel-outlet"
    title = "No outlet for the channel"


class ChannelOutlet(Protocol):
    """An adapter's sending side."""

    async def send(self, reply: OutboundReply) -> None:
        """Send ``reply`` to its chat; return once the channel took it, raise if it did not.
        Delivery is at least once: the same reply (channel, chat, ``in_reply_to``) may come
        again after a crash."""

    def working(self, message: InboundMessage) -> contextlib.AbstractAsyncContextManager[None]:
        """Entered while the assistant answers ``message`` (a typing indicator)."""


class Outlets:
    """The outlets by channel name, and the fallback sink."""

    def __init__(self, fallback: ReplySink | None = None) -> None:
        self._by_channel: dict[str, ChannelOutlet] = {}
        self.fallback = fallback

    def register(self, channel: str, outlet: ChannelOutlet) -> None:
        self._by_channel[channel] = outlet

    def unregister(self, channel: str, outlet: ChannelOutlet | None = None) -> None:
        """Forget the outlet of ``channel`` (only if it is ``outlet``, when given)."""
        if outlet is None or self._by_channel.get(channel) is outlet:
            self._by_channel.pop(channel, None)

    def get(self, channel: str) -> ChannelOutlet | None:
        return self._by_channel.get(channel)

    async def send(self, reply: OutboundReply) -> None:
        outlet = self._by_channel.get(reply.channel)
        if outlet is not None:
            await outlet.send(reply)
        elif self.fallback is not None:
            await self.fallback(reply)
        else:
            raise NoOutlet(f"no adapter sends replies of channel {reply.channel!r} yet")

    @contextlib.asynccontextmanager
    async def working(self, message: InboundMessage) -> AsyncIterator[None]:
        outlet = self._by_channel.get(message.channel)
        if outlet is None:
            yield
            return
        async with outlet.working(message):
            yield


@contextlib.asynccontextmanager
async def repeating(action: Callable[[], Awaitable[object]], every: float) -> AsyncIterator[None]:
    """Run ``action`` now and every ``every`` seconds while the block runs (a typing
    indicator); it is stopped when the block ends. ``action`` handles its own failures."""

    async def loop() -> None:
        while True:
            await action()
            await asyncio.sleep(every)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
