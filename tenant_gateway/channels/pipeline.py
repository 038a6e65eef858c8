"""The inbound pipeline as one piece the app opens, feeds and closes.

:class:`ChannelPipeline` owns the inbox, the worker that answers it, the outlets replies go
out through and the channels' webhook handlers. :meth:`ChannelPipeline.accept` is what
``POST /internal/v1/inbound`` does once the caller is authenticated; adapters running in the
gateway hand their messages to :meth:`ChannelPipeline.accept_message` directly, register
their sending side in :attr:`ChannelPipeline.outlets`, and their webhook handler (reached
through the control plane's relay, see :mod:`tenant_gateway.channels.routes`) in
:attr:`ChannelPipeline.webhooks`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

from tenant_gateway.channels.assistant import lane_of
from tenant_gateway.channels.contract import InboundMessage
from tenant_gateway.channels.inbox import Inbox
from tenant_gateway.channels.outlets import ChannelOutlet, Outlets, ReplySink
from tenant_gateway.channels.sink import HttpReplySink
from tenant_gateway.channels.worker import InboxWorker, Turn
from tenant_gateway.settings import GatewayError, GatewaySettings


class BadInboundMessage(GatewayError):
    status_code = 400
    problem = "invalid-inbound-message"
    title = "Invalid inbound message"
    error_type = "invalid_request_error"
    code = "invalid_inbound_message"


def parse_inbound(body: bytes) -> InboundMessage:
    """Decode an inbound message; :class:`BadInboundMessage` says what is wrong."""
    try:
        return msgspec.json.decode(body, type=InboundMessage)
    except msgspec.ValidationError as exc:
        raise BadInboundMessage(f"invalid inbound message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadInboundMessage(f"the request body is not valid JSON: {exc}") from None


class WebhookRequest(msgspec.Struct, frozen=True):
    """A channel's webhook call as the control plane relayed it."""

    method: str
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes


class WebhookAnswer(msgspec.Struct, frozen=True):
    """What the relay answers the channel."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"


WebhookHandler = Callable[[WebhookRequest], Awaitable[WebhookAnswer]]


class ChannelAdapter(Protocol):
    """A channel running inside the gateway (the tenant's own Telegram bot, WhatsApp,
    Discord, the platform bot's reply path). The app starts every adapter once the pipeline
    runs and stops them before it closes; an adapter registers its outlet and webhook handler
    on the pipeline itself, and follows credential changes on its own."""

    async def start(self, pipeline: ChannelPipeline) -> None: ...

    async def stop(self) -> None: ...


class ChannelPipeline:
    """Inbox, worker, outlets and webhook handlers; ``sink``: where replies of channels
    without an outlet go (None: an HTTP sink if a reply URL is set, else they wait in the
    outbox)."""

    def __init__(
        self, settings: GatewaySettings, inbox: Inbox, turn: Turn, sink: ReplySink | None = None
    ) -> None:
        self._settings = settings
        self.inbox = inbox
        self._http_sink: HttpReplySink | None = None
        if sink is None and settings.channels.reply_url is not None:
            sink = self._http_sink = HttpReplySink(settings.channels.reply_url)
        self.outlets = Outlets(sink)
        self.webhooks: dict[str, WebhookHandler] = {}
        """Per channel name, the handler of its webhook calls."""
        self._worker = InboxWorker(inbox, turn, self.outlets, settings.channels)

    def add_outlet(self, channel: str, outlet: ChannelOutlet) -> None:
        """Replies of ``channel`` go out through ``outlet`` from now on."""
        self.outlets.register(channel, outlet)
        self._worker.outlets_changed()

    def attach(
        self, channel: str, outlet: ChannelOutlet, webhook: WebhookHandler | None = None
    ) -> None:
        """An adapter's outlet, and its webhook handler if it takes webhook calls."""
        if webhook is not None:
            self.webhooks[channel] = webhook
        self.add_outlet(channel, outlet)

    def detach(self, channel: str, outlet: ChannelOutlet) -> None:
        """Undo :meth:`attach` (only what ``outlet`` attached)."""
        if self.outlets.get(channel) is outlet:
            self.webhooks.pop(channel, None)
        self.outlets.unregister(channel, outlet)

    async def open(self) -> None:
        await self.inbox.open()

    def start(self) -> None:
        """Answer what is pending (left over from before a restart too) and what comes."""
        self._worker.start()

    async def close(self) -> None:
        await self._worker.stop()
        if self._http_sink is not None:
            await self._http_sink.close()
        await self.inbox.close()

    async def accept(self, body: bytes) -> bool:
        """Store the message in ``body``; False if it was a duplicate."""
        return await self.accept_message(parse_inbound(body))

    async def accept_message(self, message: InboundMessage) -> bool:
        """Store ``message`` (it will be answered); False if it was a duplicate."""
        accepted = await self.inbox.accept(
            message, lane_of(message, self._settings.sessions.dm_scope)
        )
        if accepted:
            self._worker.wake()
        return accepted
