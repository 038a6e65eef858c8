"""The gateway's internal endpoints for the control plane about the tenant's own Telegram bot
(with the inbound key, like every channel endpoint): read and change who may talk to it,
approve a person's code, let an approved person out again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response, route
from litestar.params import FromPath

from tenant_gateway.channels.contract import (
    TELEGRAM_ACCESS_PATH,
    TELEGRAM_APPROVALS_PATH,
    ApprovedPeer,
    TelegramAccess,
    TelegramAccessUpdate,
    TelegramApproval,
)
from tenant_gateway.channels.pipeline import BadInboundMessage
from tenant_gateway.channels.routes import check_inbound_key
from tenant_gateway.channels.telegram.access import UnknownApproval
from tenant_gateway.channels.telegram.bot import TelegramChannel
from tenant_gateway.contract import GatewayBundle


def _decode(raw: bytes, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadInboundMessage(f"invalid {kind.__name__}: {exc}") from None


def telegram_routes(telegram: TelegramChannel, bundle: Callable[[], GatewayBundle]) -> list[Any]:
    @route(TELEGRAM_ACCESS_PATH, http_method=["GET", "PUT"])
    async def access(request: Request[Any, Any, Any]) -> TelegramAccess:
        check_inbound_key(bundle(), request.headers.get("authorization"))
        if request.method == "PUT":
            change = _decode(await request.body(), TelegramAccessUpdate)
            return await telegram.update_access(change)
        return await telegram.describe()

    @route(TELEGRAM_APPROVALS_PATH, http_method=["POST"], status_code=200)
    async def approve(request: Request[Any, Any, Any]) -> ApprovedPeer:
        check_inbound_key(bundle(), request.headers.get("authorization"))
        approval = _decode(await request.body(), TelegramApproval)
        return await telegram.approve(approval.code)

    @route(TELEGRAM_APPROVALS_PATH + "/{user_id:int}", http_method=["DELETE"], status_code=204)
    async def revoke(request: Request[Any, Any, Any], user_id: FromPath[int]) -> Response[None]:
        check_inbound_key(bundle(), request.headers.get("authorization"))
        if not await telegram.access.revoke(user_id):
            raise UnknownApproval(f"Telegram user {user_id} is not among the approved")
        return Response(None, status_code=204)

    return [access, approve, revoke]
