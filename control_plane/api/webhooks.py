"""The public webhook relay: ``GET|POST /webhooks/{channel}/{tenant}``.

Telegram, WhatsApp and Discord call the URL registered for a tenant's own account; the
control plane passes the call on to that tenant's gateway as it came (query, body, the
channel's signature headers; see :class:`~control_plane.channels.gateways.GatewayLink`),
and returns the gateway's answer. The gateway's adapter checks the channel's signature with
the credentials only it holds in memory, so nothing here needs them. Outside ``/api/``: no
admin credential, the channels sign their calls. A tenant that does not exist answers 404; one
whose gateway is not running 503 with ``Retry-After`` (the channels retry).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, route
from litestar.di import NamedDependency
from litestar.params import FromPath

from control_plane.channels.gateways import RELAY_CHANNELS, GatewayLink
from control_plane.errors import NotFoundError
from control_plane.tenants.service import TenantService

WEBHOOK_ROUTE = "/webhooks/{channel:str}/{tenant:str}"


@route(WEBHOOK_ROUTE, http_method=["GET", "POST"], tags=["channels"], include_in_schema=False)
async def channel_webhook(
    request: Request[Any, Any, Any],
    channel: FromPath[str],
    tenant: FromPath[str],
    tenants: NamedDependency[TenantService],
    gateway_link: NamedDependency[GatewayLink],
) -> Response[bytes]:
    if channel not in RELAY_CHANNELS:
        raise NotFoundError(f"no webhook for channel {channel!r}")
    tenant_id = await tenants.resolve_id(tenant)
    answer = await gateway_link.relay(
        tenant_id,
        channel,
        request.method,
        request.scope.get("query_string", b"").decode("latin-1"),
        dict(request.headers),
        await request.body(),
    )
    return Response(
        answer.body, status_code=answer.status, headers={"content-type": answer.content_type}
    )
