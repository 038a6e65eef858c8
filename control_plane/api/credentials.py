"""Controller of ``/api/v1/tenants/{id}/credentials``: store, list (masked), delete."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from litestar import Controller, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from control_plane.api.authz import SCOPE
from control_plane.channels.tenant_bots import TenantBots
from control_plane.errors import NotFoundError
from control_plane.vault.service import CredentialRead, CredentialVault

TELEGRAM_BOT = "telegram_bot"


class CredentialController(Controller):
    path = "/api/v1/tenants/{tenant_ref:str}/credentials"
    tags = ["credentials"]

    @put("/{provider:str}", opt={SCOPE: "credentials:write"})
    async def store_credential(
        self,
        tenant_id: NamedDependency[str],
        provider: FromPath[str],
        data: JSONBody[dict[str, Any]],
        vault: NamedDependency[CredentialVault],
        tenant_bots: NamedDependency[TenantBots],
        validate: Annotated[bool, QueryParameter(name="validate")] = False,
    ) -> CredentialRead:
        """Store (or replace) the tenant's credential for ``provider``; ``?validate=true``
        first checks it with the provider's cheapest authenticated call. A ``telegram_bot``
        token gets its webhook registered when the control plane has a public URL."""
        stored = await vault.put(tenant_id, provider, data, validate=validate)
        if provider == TELEGRAM_BOT:
            await tenant_bots.register(tenant_id, str(data.get("token", "")).strip())
        return stored

    @get("/", opt={SCOPE: "credentials:read"})
    async def list_credentials(
        self, tenant_id: NamedDependency[str], vault: NamedDependency[CredentialVault]
    ) -> list[CredentialRead]:
        """The tenant's credentials: provider, version, masked hint, non-secret fields."""
        return await vault.list_credentials(tenant_id)

    @delete("/{provider:str}", status_code=HTTP_204_NO_CONTENT, opt={SCOPE: "credentials:write"})
    async def delete_credential(
        self,
        tenant_id: NamedDependency[str],
        provider: FromPath[str],
        vault: NamedDependency[CredentialVault],
        tenant_bots: NamedDependency[TenantBots],
    ) -> None:
        """Remove the tenant's credential for ``provider`` (and a Telegram bot's webhook)."""
        token = None
        if provider == TELEGRAM_BOT:
            with contextlib.suppress(NotFoundError):
                token = (await vault.reveal(tenant_id, provider))["token"]
        await vault.delete(tenant_id, provider)
        if token is not None:
            await tenant_bots.unregister(tenant_id, token)
