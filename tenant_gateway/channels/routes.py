"""``POST /internal/v1/inbound``: where channel adapters hand the gateway their messages.

The caller presents the tenant's inbound key as ``Authorization: Bearer <key>``; its keyed
digest is compared, in constant time, with the bundle's ``inbound_key_digest``. A bundle
without one answers 404: the tenant has no channels, so for it the route does not exist
(the same answer as from a gateway that predates channels, and nothing for a prober to tell
apart); a missing or wrong key answers 401. ``202`` means the message is stored and will be
answered; ``200 {"duplicate": true}`` that it had been accepted before.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable
from typing import Any

from litestar import Request, Response, post

from tenant_gateway.channels.contract import INBOUND_PATH, InboundReceipt
from tenant_gateway.channels.pipeline import ChannelPipeline
from tenant_gateway.contract import GatewayBundle, digest_gateway_key
from tenant_gateway.keys import Unauthorized, bearer_token
from tenant_gateway.settings import GatewayError


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
    @post(INBOUND_PATH, status_code=202)
    async def inbound(request: Request[Any, Any, Any]) -> Response[InboundReceipt]:
        check_inbound_key(bundle(), request.headers.get("authorization"))
        if await pipeline.accept(await request.body()):
            return Response(InboundReceipt(duplicate=False), status_code=202)
        return Response(InboundReceipt(duplicate=True), status_code=200)

    return [inbound]
