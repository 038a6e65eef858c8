"""A tenant's whole life on the local runtime: provision, suspend, resume, delete."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from control_plane.runtime.local.processes import pid_alive
from tests.integration.reconciler.conftest import (
    ControlPlaneFactory,
    event_types,
    gateway_pid,
    live_gateway_pids,
    readiness,
    wait_state,
)


async def test_provision_suspend_resume_delete(
    control_plane: ControlPlaneFactory, data_dir: Path
) -> None:
    async with control_plane() as client:
        created = (await client.post("/api/v1/tenants", json={"slug": "acme"})).json()
        tenant_id = created["id"]
        running = await wait_state(client, "acme", "running")
        assert running["observed_generation"] == running["generation"] == 1
        assert running["endpoint"].startswith("http://127.0.0.1:")
        assert (await readiness(running["endpoint"]))["tenant_id"] == tenant_id
        assert live_gateway_pids(data_dir, tenant_id) == [gateway_pid(data_dir, tenant_id)]
        volume = data_dir / "volumes" / tenant_id
        assert volume.is_dir()

        pid = gateway_pid(data_dir, tenant_id)
        await client.patch("/api/v1/tenants/acme", json={"suspended": True})
        suspended = await wait_state(client, "acme", "suspended")
        assert suspended["endpoint"] is None
        assert suspended["observed_generation"] == 2
        assert not pid_alive(pid)
        assert live_gateway_pids(data_dir, tenant_id) == []
        assert volume.is_dir(), "suspension keeps the tenant's data"

        await client.patch("/api/v1/tenants/acme", json={"suspended": False})
        resumed = await wait_state(client, "acme", "running")
        assert resumed["observed_generation"] == 3
        assert (await readiness(resumed["endpoint"]))["tenant_id"] == tenant_id

        deleting = await client.delete("/api/v1/tenants/acme")
        assert deleting.status_code == 202
        await wait_state(client, tenant_id, "deleted")
        assert live_gateway_pids(data_dir, tenant_id) == []
        assert not volume.exists(), "deletion removes the data unless told to keep it"
        assert not (data_dir / "gateways" / tenant_id).exists()

        types = await event_types(client, tenant_id)
        for expected in (
            "tenant.created",
            "gateway.starting",
            "tenant.running",
            "tenant.suspend_requested",
            "tenant.suspended",
            "tenant.resume_requested",
            "tenant.provisioning",
            "tenant.deleting",
            "tenant.deleted",
        ):
            assert expected in types, (expected, types)
        assert types.index("tenant.suspended") < types.index("tenant.resume_requested")

        # The slug is free again once the tenant is deleted.
        again = await client.post("/api/v1/tenants", json={"slug": "acme"})
        assert again.status_code == 202
        assert again.json()["id"] != tenant_id
        await wait_state(client, "acme", "running")
        await client.delete("/api/v1/tenants/acme")
        await wait_state(client, again.json()["id"], "deleted")


async def test_delete_keeps_data_when_configured(
    control_plane: ControlPlaneFactory, data_dir: Path
) -> None:
    async with control_plane(TENANTRY_LOCAL_RETAIN_DATA="true") as client:
        tenant = (await client.post("/api/v1/tenants", json={"slug": "keep"})).json()
        await wait_state(client, "keep", "running")
        await client.delete("/api/v1/tenants/keep")
        await wait_state(client, tenant["id"], "deleted")
        assert (data_dir / "volumes" / tenant["id"]).is_dir()
        assert live_gateway_pids(data_dir, tenant["id"]) == []


async def test_delete_while_provisioning(
    control_plane: ControlPlaneFactory, data_dir: Path
) -> None:
    async with control_plane() as client:
        tenant = (await client.post("/api/v1/tenants", json={"slug": "quick"})).json()
        deleting = await client.delete(f"/api/v1/tenants/{tenant['id']}")
        assert deleting.status_code == 202, deleting.text
        assert deleting.json()["state"] == "deleting"
        await wait_state(client, tenant["id"], "deleted")
        assert live_gateway_pids(data_dir, tenant["id"]) == []


async def test_a_gateway_that_cannot_start_fails_the_tenant_with_a_reason(
    control_plane: ControlPlaneFactory,
) -> None:
    broken = [sys.executable, "-c", "import sys; print('boom: no config'); sys.exit(3)"]
    async with control_plane(gateway_command=broken) as client:
        await client.post("/api/v1/tenants", json={"slug": "broken"})
        failed = await wait_state(client, "broken", "failed")
        assert "exited with code 3" in failed["reason"]
        assert "boom: no config" in failed["reason"]
        assert failed["observed_generation"] == 0

        # Failed tenants are retried, never silently: more failures are recorded.
        async def retried() -> bool:
            types = await event_types(client, "broken")
            return types.count("tenant.provisioning") >= 1 and types.count("tenant.failed") >= 2

        from tests.waiting import eventually

        await eventually(retried, timeout=30, what="a retry of the failed tenant")


@pytest.mark.parametrize("keys", [2])
async def test_gateway_sees_new_and_revoked_keys(
    control_plane: ControlPlaneFactory, keys: int
) -> None:
    import httpx

    from tests.waiting import eventually

    async with control_plane() as client:
        tenant = (await client.post("/api/v1/tenants", json={"slug": "keys"})).json()
        endpoint = (await wait_state(client, "keys", "running"))["endpoint"]
        extra = (await client.post("/api/v1/tenants/keys/gateway-keys", json={"name": "x"})).json()

        async def status_with(key: str) -> int:
            async with httpx.AsyncClient(timeout=5) as http:
                response = await http.get(
                    f"{endpoint}/v1/models", headers={"Authorization": f"Bearer {key}"}
                )
                return response.status_code

        first = tenant["gateway_key"]["key"]
        assert await status_with(first) == 200
        await eventually(
            lambda: _equals(status_with(extra["key"]), 200), timeout=10, what="new key accepted"
        )
        await client.delete(f"/api/v1/tenants/keys/gateway-keys/{extra['id']}")
        await eventually(
            lambda: _equals(status_with(extra["key"]), 401), timeout=10, what="revoked key refused"
        )
        assert await status_with(first) == 200
        assert await status_with("tgk_not-a-key") == 401
        assert keys == 2


async def _equals(value: object, expected: int) -> bool:
    return await value == expected  # type: ignore[misc]
