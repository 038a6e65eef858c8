"""``POST /internal/v1/inbound``: where channel adapters hand the gateway their messages.

The caller presents the tenant's inbound key as ``Authorization: Bearer <key>``; its keyed
digest is compared, in constant time, with the bundle's ``inbound_key_digest``. A bundle
without one answers 404: the tenant has no channels, so for it the route does not exist
(the same answer as from a gateway that predates channels, and nothing for a prober to tell
apart); a missing or wrong key answers 401. ``202`` means the message is stored and will be
answered; ``200 {"duplicate": true}`` that it had been accepted before.

``GET|POST /internal/v1/channels/{channel}/webhook`` takes a channel's webhook call (Telegram,
WhatsApp, Discord) that the control plane's public relay (``/webhooks/{channel}/{tenant}``)
passed on as it came (query, body, the channel's signature headers), with the same inbound
key; the channel's adapter checks the channel's own signature and answers. A channel without
a running adapter answers 404.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable
from typing import Any

from litestar import Request, Response, route
from litestar.params import FromPath

from tenant_gateway.channels.contract import INBOUND_PATH, WEBHOOK_PATH, InboundReceipt
from tenant_gateway.channels.pipeline import ChannelPipeline, WebhookRequest
from tenant_gateway.contract import GatewayBundle, digest_gateway_key
from tenant_gateway.keys import Unauthorized, bearer_token
from tenant_gateway.settings import GatewayError


class NoSuchChannel(GatewayError):
    status_code = 404
    problem = "channel-not-running"
    title = "Channel not running"
    error_type = "invalid_request_error"
    code = "channel_not_running"


class ChannelsDisabled(GatewayError):
    status_code = 404
    problem = "channels-disabled"
    title = "Channels disabled"
    error_type = "invalid_request_error"
    code = "channels_disabled"


def check_inbound_key(bundle: GatewayBundle, authorization: str | None) -> None:
    """Raise unless ``authorization`` carries the tenant's inbound key."""
    if bundle.inbound_key_digest is None:
        raise ChannelsDisabled("this tenant takes no channel messages (no inbound key is set)")
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized("send the tenant's inbound key as Authorization: Bearer <key>")
    digest = digest_gateway_key(token, base64.b64decode(bundle.key_digest_key))
    if not hmac.compare_digest(digest, bundle.inbound_key_digest.strip().lower()):
        raise Unauthorized("the inbound key is not this tenant's")


def inbound_routes(pipeline: ChannelPipeline, bundle: Callable[[], GatewayBundle]) -> list[Any]:
    @route(INBOUND_PATH, http_method=["POST"], status_code=202)
    async def inbound(request: Request[Any, Any, Any]) -> Response[InboundReceipt]:
        check_inbound_key(bundle(), request.headers.get("authorization"))
        if await pipeline.accept(await request.body()):
            return Response(InboundReceipt(duplicate=False), status_code=202)
        return Response(InboundReceipt(duplicate=True), status_code=200)

    @route(WEBHOOK_PATH.replace("{channel}", "{channel:str}"), http_method=["GET", "POST"])
    async def webhook(request: Request[Any, Any, Any], channel: FromPath[str]) -> Response[bytes]:
        check_inbound_key(bundle(), request.headers.get("authorization"))
        handler = pipeline.webhooks.get(channel)
        if handler is None:
            raise NoSuchChannel(f"no {channel!r} channel runs in this gateway")
        answer = await handler(
            WebhookRequest(
                method=request.method,
                query=dict(request.query_params),
                headers={k.lower(): v for k, v in request.headers.items() if k != "authorization"},
                body=await request.body(),
            )
        )
        return Response(
            answer.body,
            status_code=answer.status,
            headers={"content-type": answer.content_type},
        )

    return [inbound, webhook]
