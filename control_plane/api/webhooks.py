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
from control_plane.channels.platform_bot import WEBHOOK_PATH, PlatformBot
from control_plane.channels.tenant_bots import TenantBots
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
    tenant_bots: NamedDependency[TenantBots],
) -> Response[bytes]:
    if channel not in RELAY_CHANNELS:
        raise NotFoundError(f"no webhook for channel {channel!r}")
    tenant_id = await tenants.resolve_id(tenant)
    if channel == "telegram":
        # The secret is derived per tenant: checked here, the gateway never sees it.
        tenant_bots.check_secret(tenant_id, request.headers.get("x-telegram-bot-api-secret-token"))
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


@route(WEBHOOK_PATH, http_method=["POST"], tags=["channels"], include_in_schema=False)
async def platform_bot_webhook(
    request: Request[Any, Any, Any], platform_bot: NamedDependency[PlatformBot]
) -> Response[bytes]:
    """Telegram's updates for the platform bot, signed with the secret token the bot
    registered. 200 once the update's message is delivered to its tenant's gateway or kept
    for it; 404 while the bot runs by polling (no webhook is registered); 401 for a wrong
    secret."""
    if not platform_bot.enabled or platform_bot.webhook_url is None:
        raise NotFoundError("the platform Telegram bot takes no webhook calls here")
    platform_bot.check_webhook_secret(request.headers.get("x-telegram-bot-api-secret-token"))
    await platform_bot.handle_webhook(await request.body())
    return Response(b"{}", status_code=200, headers={"content-type": "application/json"})
