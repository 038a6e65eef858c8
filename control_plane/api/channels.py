"""Controllers of a tenant's chat channels: pairing codes for the platform Telegram bot, the
chats bound to the tenant, and unbinding one."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from control_plane.api.authz import SCOPE, principal_of
from control_plane.channels.schemas import ChannelBindingRead, PairingCode
from control_plane.channels.service import ChannelDirectory


class ChannelController(Controller):
    path = "/api/v1/tenants/{tenant_ref:str}/channels"
    tags = ["channels"]

    @post("/telegram/pairing", status_code=HTTP_201_CREATED, opt={SCOPE: "channels:write"})
    async def pair_telegram_chat(
        self,
        request: Request[Any, Any, Any],
        tenant_id: NamedDependency[str],
        channels: NamedDependency[ChannelDirectory],
    ) -> PairingCode:
        """A single-use code, valid ten minutes: sending ``/start CODE`` to the platform
        Telegram bot binds that chat to the tenant. Shown in this answer only."""
        return await channels.issue_code(tenant_id, principal_of(request).id)

    @get("/", opt={SCOPE: "channels:read"})
    async def list_channels(
        self, tenant_id: NamedDependency[str], channels: NamedDependency[ChannelDirectory]
    ) -> list[ChannelBindingRead]:
        """The chats bound to the tenant, with their status."""
        return await channels.list_bindings(tenant_id)

    @delete("/{binding_id:str}", status_code=HTTP_204_NO_CONTENT, opt={SCOPE: "channels:write"})
    async def unbind_channel(
        self,
        tenant_id: NamedDependency[str],
        binding_id: FromPath[str],
        channels: NamedDependency[ChannelDirectory],
    ) -> None:
        """Unbind a chat: its messages stop reaching the tenant; it may be paired again."""
        await channels.unbind(tenant_id, binding_id)
