"""The guard on the admin API: a valid platform admin bearer token."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from control_plane.identity.admin_tokens import AdminTokens


async def require_admin(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    tokens: AdminTokens = connection.app.state.admin_tokens
    await tokens.verify(connection.headers.get("authorization"))
