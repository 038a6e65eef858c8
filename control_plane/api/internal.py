"""The control plane's internal API, called by tenant gateways (not by admins)."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from control_plane.vault.service import CredentialVault
from tenant_gateway.contract import UNSEAL_PATH, UnsealResponse


@post(
    UNSEAL_PATH.replace("{tenant_id}", "{gateway_tenant:str}"), status_code=200, tags=["internal"]
)
async def unseal_gateway(
    request: Request[Any, Any, Any],
    gateway_tenant: FromPath[str],
    vault: NamedDependency[CredentialVault],
) -> UnsealResponse:
    """A gateway, authenticated by its identity token, fetches its tenant's data keys.

    Refused (403) for a suspended tenant, a tenant being deleted, or a wrong token."""
    return await vault.unseal(gateway_tenant, request.headers.get("authorization"))
