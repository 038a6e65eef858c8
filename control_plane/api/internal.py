"""The control plane's internal API, called by tenant gateways (not by admins)."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from control_plane.usage.service import UsageLedger, read_batch
from control_plane.vault.service import CredentialVault
from tenant_gateway.contract import UNSEAL_PATH, USAGE_PATH, UnsealResponse, UsageReceipt


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


@post(USAGE_PATH.replace("{tenant_id}", "{gateway_tenant:str}"), status_code=200, tags=["internal"])
async def ingest_usage(
    request: Request[Any, Any, Any],
    gateway_tenant: FromPath[str],
    vault: NamedDependency[CredentialVault],
    usage: NamedDependency[UsageLedger],
) -> UsageReceipt:
    """A gateway, authenticated by its identity token, reports a batch of its tenant's usage
    events; each event id is counted once, however often it is delivered.

    Refused (403) for a wrong token or events of another tenant; 400 for a malformed batch."""
    await vault.verify_gateway(gateway_tenant, request.headers.get("authorization"))
    batch = read_batch(await request.body())
    return await usage.ingest(gateway_tenant, batch.events)
