"""Controllers of a tenant's chat channels: pairing codes for the platform Telegram bot, the
chats bound to the tenant, and unbinding one; who may talk to the tenant's own Telegram bot."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from control_plane.api.authz import SCOPE, principal_of
from control_plane.channels.schemas import ChannelBindingRead, PairingCode
from control_plane.channels.service import ChannelDirectory
from control_plane.channels.tenant_bots import TenantBots
from tenant_gateway.channels.contract import (
    ApprovedPeer,
    TelegramAccess,
    TelegramAccessUpdate,
    TelegramApproval,
)


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

    # -- the tenant's own Telegram bot (kept by its gateway) ---------------------------------

    @get("/telegram", opt={SCOPE: "channels:read"})
    async def telegram_access(
        self, tenant_id: NamedDependency[str], tenant_bots: NamedDependency[TenantBots]
    ) -> TelegramAccess:
        """Who may talk to the tenant's own Telegram bot in private chats (DM policy,
        allowlist, people approved), and how the bot runs. 503 while the gateway is down."""
        return await tenant_bots.access(tenant_id)

    @put("/telegram", opt={SCOPE: "channels:write"})
    async def set_telegram_access(
        self,
        tenant_id: NamedDependency[str],
        data: JSONBody[TelegramAccessUpdate],
        tenant_bots: NamedDependency[TenantBots],
    ) -> TelegramAccess:
        """Change the DM policy (``pairing``, ``allowlist``, ``open``) and/or the allowlist
        (Telegram user ids); fields left out stay as they are."""
        return await tenant_bots.set_access(tenant_id, data)

    @post("/telegram/approvals", status_code=200, opt={SCOPE: "channels:write"})
    async def approve_telegram_user(
        self,
        tenant_id: NamedDependency[str],
        data: JSONBody[TelegramApproval],
        tenant_bots: NamedDependency[TenantBots],
    ) -> ApprovedPeer:
        """Let in the person the tenant's bot gave this code (under the ``pairing``
        policy); the bot tells them. 404 for a code no one waits with."""
        return await tenant_bots.approve(tenant_id, data)

    @delete(
        "/telegram/approvals/{user_id:int}",
        status_code=HTTP_204_NO_CONTENT,
        opt={SCOPE: "channels:write"},
    )
    async def revoke_telegram_user(
        self,
        tenant_id: NamedDependency[str],
        user_id: FromPath[int],
        tenant_bots: NamedDependency[TenantBots],
    ) -> None:
        """Let an approved person out again: the bot asks them for a new code."""
        await tenant_bots.revoke(tenant_id, user_id)
