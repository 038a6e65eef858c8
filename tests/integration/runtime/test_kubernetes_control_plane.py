"""The control plane with ``TENANTRY_RUNTIME=kubernetes`` against a Kubernetes API emulator:
creating a tenant applies its Tenant resource and bundle Secret (ciphertext only), and the
status the operator writes flows back, through the runtime's watch, into the tenant's state
and events. The test plays the operator by writing that status."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from control_plane.app import create_app
from control_plane.runtime.kubernetes import resources
from control_plane.runtime.kubernetes.runtime import KubernetesRuntime
from control_plane.settings import load_settings
from tests.integration.runtime.kubernetes_cluster import Cluster
from tests.waiting import eventually

PLANTED_KEY = "sk-planted-kubernetes-secret-value-4242"


async def test_a_tenant_is_provisioned_through_the_operators_status(
    threaded_cluster: Cluster,
    tmp_path: Path,
) -> None:
    cluster = threaded_cluster
    settings = load_settings(
        {
            "TENANTRY_RUNTIME": "kubernetes",
            "TENANTRY_RESYNC_INTERVAL": "0.5",
            "TENANTRY_KUBERNETES_NAMESPACE": "tenants",
            "TENANTRY_INTERNAL_URL": "http://control-plane.tenantry:8080",
        },
        data_dir=str(tmp_path / "data"),
    )
    runtime = KubernetesRuntime(settings.kubernetes, cluster.api)
    tokens: list[str] = []
    app = create_app(settings, runtime=runtime, on_first_token=tokens.append)
    async with AsyncTestClient(app=app, timeout=30) as client:
        client.headers["Authorization"] = f"Bearer {tokens[0]}"
        tenant: dict[str, Any] = (
            await client.post("/api/v1/tenants", json={"slug": "orbit"})
        ).json()
        stored = await client.put(
            f"/api/v1/tenants/{tenant['id']}/credentials/openai", json={"api_key": PLANTED_KEY}
        )
        assert stored.status_code == 200, stored.text
        name = resources.tenant_name(tenant["id"])

        applied = await eventually(
            lambda: cluster.tenant("tenants", name), timeout=20, what="Tenant applied"
        )
        assert applied["spec"]["slug"] == "orbit"
        assert applied["spec"]["controlPlaneUrl"] == "http://control-plane.tenantry:8080"
        state = (await client.get(f"/api/v1/tenants/{tenant['id']}")).json()
        assert state["state"] == "provisioning", "not running before the operator says so"

        endpoint = f"http://{name}.tenants.svc:80"
        await cluster.set_status("tenants", name, {"phase": "Running", "endpoint": endpoint})

        async def in_state(state: str) -> dict[str, Any] | None:
            body: dict[str, Any] = (await client.get(f"/api/v1/tenants/{tenant['id']}")).json()
            return body if body["state"] == state else None

        async def event_types() -> list[str]:
            events = (await client.get(f"/api/v1/tenants/{tenant['id']}/events")).json()
            return [e["type"] for e in events]

        shown = await eventually(lambda: in_state("running"), timeout=20, what="tenant running")
        assert shown["endpoint"] == endpoint
        assert "tenant.running" in await event_types()

        # The operator gives up on the gateway: the tenant fails with the operator's reason,
        # and runs again once the operator reports it running.
        deadline = "the rollout exceeded its progress deadline"
        await cluster.set_status("tenants", name, {"phase": "Failed", "message": deadline})
        failed = await eventually(lambda: in_state("failed"), timeout=20, what="tenant failed")
        assert deadline in failed["reason"]
        await cluster.set_status("tenants", name, {"phase": "Running", "message": "ready"})
        await eventually(lambda: in_state("running"), timeout=20, what="tenant running again")
        types = await event_types()
        assert "tenant.failed" in types
        assert "gateway.restarted" in types

        # The Secret carries the credential sealed, never in plaintext.
        async def secret_with_credential() -> dict[str, Any] | None:
            secret = await asyncio.to_thread(
                cluster.emulator_secret, "tenants", resources.bundle_secret_name(tenant["id"])
            )
            bundle = json.loads(base64.b64decode(secret["data"]["bundle.json"]))
            return bundle if bundle["credentials"] else None

        bundle = await eventually(secret_with_credential, timeout=20, what="sealed credential")
        assert [c["provider"] for c in bundle["credentials"]] == ["openai"]
        everything = json.dumps([o.raw for o in cluster.emulator.objects.values()], default=str)
        assert PLANTED_KEY not in everything
        assert base64.b64encode(PLANTED_KEY.encode()).decode() not in everything

        # Suspending reaches the Tenant resource.
        await client.patch(f"/api/v1/tenants/{tenant['id']}", json={"suspended": True})

        async def suspended() -> bool:
            body = await cluster.tenant("tenants", name)
            return bool(body and body["spec"]["suspended"] is True)

        await eventually(suspended, timeout=20, what="suspension applied")
