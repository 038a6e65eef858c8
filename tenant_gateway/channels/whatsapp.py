"""The tenant's WhatsApp number (Meta's Cloud API), while the tenant holds a ``whatsapp``
credential (``access_token``, ``app_secret``, ``verify_token``, ``phone_number_id``).

Meta calls the webhook URL the tenant registered, ``/webhooks/whatsapp/{tenant}`` on the
control plane, which relays the call here:

* ``GET`` is the subscription handshake: ``hub.mode=subscribe`` with the tenant's
  ``hub.verify_token`` (compared in constant time) is answered with ``hub.challenge``; else 403.
* ``POST`` carries events, signed ``X-Hub-Signature-256: sha256=<HMAC-SHA256(app_secret, raw
  body)>`` (checked in constant time; 401 if missing or wrong). Text messages go to the inbox
  under their ``wamid.…`` id, so an event Meta delivers again is answered once; statuses and
  other message types are ignored. The answer is 200 as soon as the messages are stored.

Replies go out as ``POST {graph}/{phone_number_id}/messages`` with the access token, in
pieces of at most 4096 characters.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from tenant_gateway.channels.contract import InboundMessage, OutboundReply
from tenant_gateway.channels.pipeline import ChannelPipeline, WebhookAnswer, WebhookRequest
from tenant_gateway.channels.platforms import (
    BadWebhookCall,
    PlatformLink,
    SignatureRefused,
    VerificationRefused,
)
from tenant_gateway.channels.text import split_text
from tenant_gateway.contract import GatewayBundle
from tenant_gateway.credentials import CredentialKeeper

CHANNEL = "whatsapp"
DEFAULT_BASE = "https://graph.facebook.com/v21.0"
TEXT_LIMIT = 4096


class _Text(msgspec.Struct):
    body: str


class _Message(msgspec.Struct):
    id: str
    type: str
    text: _Text | None = None
    from_: str = msgspec.field(default="", name="from")


class _Profile(msgspec.Struct):
    name: str | None = None


class _Contact(msgspec.Struct):
    wa_id: str
    profile: _Profile | None = None


class _Metadata(msgspec.Struct):
    phone_number_id: str = ""


class _Value(msgspec.Struct):
    metadata: _Metadata | None = None
    contacts: list[_Contact] = []
    messages: list[_Message] = []


class _Change(msgspec.Struct):
    value: _Value
    field: str = ""


class _Entry(msgspec.Struct):
    changes: list[_Change] = []


class _Notification(msgspec.Struct):
    entry: list[_Entry] = []


def signature_of(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends with ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def text_messages(body: bytes, phone_number_id: str) -> list[InboundMessage]:
    """The text messages to ``phone_number_id`` in a notification body."""
    try:
        notification = msgspec.json.decode(body, type=_Notification)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadWebhookCall(f"not a WhatsApp notification: {exc}") from None
    found: list[InboundMessage] = []
    now = datetime.now(UTC)
    for change in (c for e in notification.entry for c in e.changes):
        value = change.value
        if value.metadata is not None and value.metadata.phone_number_id != phone_number_id:
            continue
        names = {c.wa_id: c.profile.name for c in value.contacts if c.profile is not None}
        for message in value.messages:
            if message.type != "text" or message.text is None or not message.from_:
                continue
            found.append(
                InboundMessage(
                    channel=CHANNEL,
                    message_id=message.id,
                    chat_id=message.from_,
                    peer_id=message.from_,
                    chat_type="dm",
                    text=message.text.body,
                    received_at=now,
                    sender_name=names.get(message.from_),
                )
            )
    return found


class WhatsAppChannel:
    """The WhatsApp adapter: webhook handler and outlet of channel ``whatsapp``."""

    def __init__(self, keeper: CredentialKeeper, bundle: Callable[[], GatewayBundle]) -> None:
        self.link = PlatformLink(CHANNEL, DEFAULT_BASE, keeper, bundle)
        self._pipeline: ChannelPipeline | None = None

    async def start(self, pipeline: ChannelPipeline) -> None:
        self._pipeline = pipeline
        pipeline.attach(CHANNEL, self, self.webhook)

    async def stop(self) -> None:
        if self._pipeline is not None:
            self._pipeline.detach(CHANNEL, self)
            self._pipeline = None
        await self.link.close()

    async def webhook(self, request: WebhookRequest) -> WebhookAnswer:
        credential = self.link.credential()
        if request.method == "GET":
            return self._handshake(request, credential["verify_token"])
        signature = request.headers.get("x-hub-signature-256", "")
        expected = signature_of(credential["app_secret"], request.body)
        if not signature:
            raise SignatureRefused("the X-Hub-Signature-256 header is missing")
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise SignatureRefused("X-Hub-Signature-256 does not match the body and app secret")
        assert self._pipeline is not None
        for message in text_messages(request.body, credential["phone_number_id"]):
            await self._pipeline.accept_message(message)
        return WebhookAnswer(200, b"OK", "text/plain")

    @staticmethod
    def _handshake(request: WebhookRequest, verify_token: str) -> WebhookAnswer:
        given = request.query.get("hub.verify_token", "")
        if request.query.get("hub.mode") != "subscribe" or not hmac.compare_digest(
            given.encode(), verify_token.encode()
        ):
            raise VerificationRefused("hub.mode must be subscribe, with the tenant's verify token")
        challenge = request.query.get("hub.challenge", "")
        return WebhookAnswer(200, challenge.encode(), "text/plain")

    async def send(self, reply: OutboundReply) -> None:
        credential = self.link.credential()
        headers = {"authorization": f"Bearer {credential['access_token']}"}
        for piece in split_text(reply.text, TEXT_LIMIT):
            payload = {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": reply.chat_id,
                "type": "text",
                "text": {"body": piece, "preview_url": False},
            }
            path = f"/{credential['phone_number_id']}/messages"
            await self.link.call("POST", path, payload, headers)

    def working(self, message: InboundMessage) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()
