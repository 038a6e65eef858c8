"""Controller of ``/api/v1/tenants/{id}/credentials``: store, list (masked), delete."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from control_plane.api.authz import SCOPE
from control_plane.vault.service import CredentialRead, CredentialVault


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
        validate: Annotated[bool, QueryParameter(name="validate")] = False,
    ) -> CredentialRead:
        """Store (or replace) the tenant's credential for ``provider``; ``?validate=true``
        first checks it with the provider's cheapest authenticated call."""
        return await vault.put(tenant_id, provider, data, validate=validate)

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
    ) -> None:
        """Remove the tenant's credential for ``provider``."""
        await vault.delete(tenant_id, provider)
