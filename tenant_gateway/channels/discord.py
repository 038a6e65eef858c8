"""The tenant's Discord application, while the tenant holds a ``discord`` credential
(``bot_token``, ``application_id``, ``public_key``).

Discord posts interactions to the application's *Interactions Endpoint URL*,
``/webhooks/discord/{tenant}`` on the control plane, which relays them here. Each is signed:
``X-Signature-Ed25519`` is the Ed25519 signature of ``X-Signature-Timestamp`` + raw body under
the application's public key. A missing or wrong signature, a timestamp more than five
minutes off, or a signature seen before (a replay) is answered 401.

* PING (type 1) is answered ``{"type": 1}``.
* The ``/ask prompt:…`` command (type 2) goes to the inbox under the interaction id and is
  answered ``{"type": 5}`` (deferred: Discord shows "thinking…"); the reply follows as
  ``POST {discord}/webhooks/{application_id}/{interaction_token}``. Interaction tokens are
  kept in memory only (never on disk) for their 15 minutes; without one (after a restart, or
  later) the reply is posted to the channel with the bot token. Pieces of at most 2000
  characters.

The command is registered (``PUT {discord}/applications/{application_id}/commands``) when the
credential appears or changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from tenant_gateway.channels.contract import InboundMessage, OutboundReply
from tenant_gateway.channels.pipeline import ChannelPipeline, WebhookAnswer, WebhookRequest
from tenant_gateway.channels.platforms import (
    BadWebhookCall,
    PlatformLink,
    PlatformRefused,
    SignatureRefused,
)
from tenant_gateway.channels.text import split_text
from tenant_gateway.contract import GatewayBundle
from tenant_gateway.credentials import CredentialKeeper

log = logging.getLogger(__name__)

CHANNEL = "discord"
DEFAULT_BASE = "https://discord.com/api/v10"
TEXT_LIMIT = 2000
MAX_SKEW = 300.0
"""Seconds an interaction's timestamp may be off; older ones are refused as replays."""
TOKEN_LIFETIME = 15 * 60.0
"""Seconds Discord accepts follow-ups with an interaction's token."""
COMMAND = {
    "name": "ask",
    "type": 1,
    "description": "Ask the assistant",
    "options": [
        {"name": "prompt", "type": 3, "description": "What to ask", "required": True},
    ],
}
PING, APPLICATION_COMMAND = 1, 2
PONG, DEFERRED_ANSWER = b'{"type":1}', b'{"type":5}'


class _User(msgspec.Struct):
    id: str
    username: str = ""
    global_name: str | None = None


class _Member(msgspec.Struct):
    user: _User


class _Option(msgspec.Struct):
    name: str
    value: str | int | float | bool | None = None


class _CommandData(msgspec.Struct):
    name: str
    options: list[_Option] = []


class _Interaction(msgspec.Struct):
    type: int
    id: str = ""
    token: str = ""
    channel_id: str | None = None
    guild_id: str | None = None
    member: _Member | None = None
    user: _User | None = None
    data: _CommandData | None = None


def verify_signature(public_key: str, signature: str, timestamp: str, body: bytes) -> None:
    """Raise :class:`SignatureRefused` unless ``signature`` (hex) is the Ed25519 signature of
    ``timestamp + body`` under ``public_key`` (hex)."""
    # Imported here: only a gateway with a Discord credential loads the signature library.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
        key.verify(bytes.fromhex(signature), timestamp.encode() + body)
    except (ValueError, InvalidSignature):
        raise SignatureRefused(
            "X-Signature-Ed25519 does not match the timestamp, body and public key"
        ) from None


def _prompt(data: _CommandData) -> str:
    for option in data.options:
        if option.name == "prompt" and isinstance(option.value, str):
            return option.value
    raise BadWebhookCall(f"the /{data.name} command has no prompt")


class DiscordChannel:
    """The Discord adapter: webhook handler and outlet of channel ``discord``."""

    def __init__(self, keeper: CredentialKeeper, bundle: Callable[[], GatewayBundle]) -> None:
        self.link = PlatformLink(CHANNEL, DEFAULT_BASE, keeper, bundle)
        self._pipeline: ChannelPipeline | None = None
        self._seen: dict[str, float] = {}
        """Signatures accepted in the last :data:`MAX_SKEW` seconds, by their timestamp."""
        self._tokens: dict[str, tuple[str, float]] = {}
        """Interaction id → its token and when it expires (monotonic clock)."""
        self._registered: tuple[str, str] | None = None
        self._registering: asyncio.Task[None] | None = None

    async def start(self, pipeline: ChannelPipeline) -> None:
        self._pipeline = pipeline
        pipeline.attach(CHANNEL, self, self.webhook)
        await self.credentials_changed()

    async def stop(self) -> None:
        if self._pipeline is not None:
            self._pipeline.detach(CHANNEL, self)
            self._pipeline = None
        if self._registering is not None:
            self._registering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._registering
        await self.link.close()

    async def credentials_changed(self, _bundle: GatewayBundle | None = None) -> None:
        """Register the ``/ask`` command for a credential not registered yet (in the
        background: a slow Discord does not hold up the bundle)."""
        try:
            credential = self.link.credential()
        except Exception:
            self._registered = None
            return
        identity = (credential["application_id"], credential["bot_token"])
        if self._pipeline is None or identity == self._registered:
            return
        self._registered = identity
        self._registering = asyncio.create_task(self._register(credential))

    async def _register(self, credential: dict[str, str]) -> None:
        path = f"/applications/{credential['application_id']}/commands"
        try:
            await self.link.call("PUT", path, [COMMAND], self._bot(credential))
        except PlatformRefused as exc:
            self._registered = None
            log.warning("cannot register the /ask command: %s", exc.detail)

    @staticmethod
    def _bot(credential: dict[str, str]) -> dict[str, str]:
        return {"authorization": f"Bot {credential['bot_token']}"}

    async def webhook(self, request: WebhookRequest) -> WebhookAnswer:
        credential = self.link.credential()
        self._check(request, credential["public_key"])
        try:
            interaction = msgspec.json.decode(request.body, type=_Interaction)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BadWebhookCall(f"not a Discord interaction: {exc}") from None
        if interaction.type == PING:
            return WebhookAnswer(200, PONG)
        if interaction.type != APPLICATION_COMMAND or interaction.data is None:
            raise BadWebhookCall(f"interactions of type {interaction.type} are not handled")
        user = interaction.member.user if interaction.member is not None else interaction.user
        if user is None or interaction.channel_id is None or not interaction.id:
            raise BadWebhookCall("the interaction names no user, channel or id")
        self.link.keep_secret(interaction.token)
        self._tokens[interaction.id] = (interaction.token, time.monotonic() + TOKEN_LIFETIME)
        assert self._pipeline is not None
        await self._pipeline.accept_message(
            InboundMessage(
                channel=CHANNEL,
                message_id=interaction.id,
                chat_id=interaction.channel_id,
                peer_id=user.id,
                chat_type="dm" if interaction.guild_id is None else "group",
                text=_prompt(interaction.data),
                received_at=datetime.now(UTC),
                sender_name=user.global_name or user.username or None,
                mentioned=True,  # a slash command is addressed to the bot
            )
        )
        return WebhookAnswer(200, DEFERRED_ANSWER)

    def _check(self, request: WebhookRequest, public_key: str) -> None:
        signature = request.headers.get("x-signature-ed25519", "")
        timestamp = request.headers.get("x-signature-timestamp", "")
        if not signature or not timestamp:
            raise SignatureRefused("X-Signature-Ed25519 and X-Signature-Timestamp are required")
        try:
            sent_at = float(timestamp)
        except ValueError:
            raise SignatureRefused("X-Signature-Timestamp is not a Unix time") from None
        now = time.time()
        if abs(now - sent_at) > MAX_SKEW:
            raise SignatureRefused("X-Signature-Timestamp is more than five minutes off")
        verify_signature(public_key, signature, timestamp, request.body)
        self._seen = {s: t for s, t in self._seen.items() if now - t <= MAX_SKEW}
        if signature in self._seen:
            raise SignatureRefused("this interaction was delivered before (a replay)")
        self._seen[signature] = sent_at

    async def send(self, reply: OutboundReply) -> None:
        credential = self.link.credential()
        now = time.monotonic()
        self._tokens = {i: t for i, t in self._tokens.items() if t[1] > now}
        token = self._tokens.get(reply.in_reply_to or "")
        for piece in split_text(reply.text, TEXT_LIMIT):
            payload = {"content": piece, "allowed_mentions": {"parse": []}}
            if token is not None:
                path = f"/webhooks/{credential['application_id']}/{token[0]}"
                await self.link.call("POST", path, payload, {})
            else:
                path = f"/channels/{reply.chat_id}/messages"
                await self.link.call("POST", path, payload, self._bot(credential))
        if reply.in_reply_to is not None:
            self._tokens.pop(reply.in_reply_to, None)

    def working(self, message: InboundMessage) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()
