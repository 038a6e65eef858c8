"""The Kubernetes runtime against a Kubernetes API emulator, through the real ``kubernetes``
client. The test plays the operator: it writes the Tenant's status the way the operator
does, and the runtime turns it into gateway status, failures and events."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from kubernetes import client as k8s

from control_plane.runtime.base import GatewaySpec, RuntimeFailure
from control_plane.runtime.kubernetes import resources
from control_plane.runtime.kubernetes.runtime import KubernetesRuntime
from control_plane.settings import KubernetesRuntimeSettings
from tenant_gateway.contract import GatewayBundle
from tests.integration.runtime.kubernetes_cluster import Cluster
from tests.waiting import eventually

TENANT_ID = "01a20000-0000-7000-8000-00000000c0de"


def make_runtime(cluster: Cluster, **config: Any) -> KubernetesRuntime:
    settings = KubernetesRuntimeSettings(**{"ready_timeout": 10.0, **config})
    return KubernetesRuntime(
        settings,
        cluster.api,
        platform_models_url="http://vllm.fleet:8000/v1",
        poll_interval=0.05,
        observe_interval=0.05,
    )


def spec(slug: str = "acme") -> GatewaySpec:
    return GatewaySpec(
        tenant_id=TENANT_ID,
        slug=slug,
        plan="pro",
        identity_token="tgi_identity-for-the-test",
        bundle=GatewayBundle(
            tenant_id=TENANT_ID,
            tenant_slug=slug,
            keys=[],
            key_digest_key=base64.b64encode(bytes(32)).decode(),
            control_plane_url="http://control-plane.tenantry:8080",
        ),
    )


NAME = resources.tenant_name(TENANT_ID)


async def test_a_tenant_runs_once_the_operator_reports_it_running(cluster: Cluster) -> None:
    runtime = make_runtime(cluster)
    events: list[tuple[str, str]] = []

    async def listener(tenant_id: str, kind: str, message: str, data: dict[str, Any]) -> None:
        events.append((tenant_id, kind))

    await runtime.start(listener)
    try:
        starting = asyncio.create_task(runtime.ensure_running(spec()))
        applied = await eventually(
            lambda: cluster.tenant("tenantry-tenants", NAME), timeout=10, what="Tenant applied"
        )
        assert applied["spec"]["tenantId"] == TENANT_ID
        assert applied["spec"]["slug"] == "acme"
        assert applied["spec"]["plan"] == "pro"
        assert applied["spec"]["replicas"] == 1
        assert applied["spec"]["suspended"] is False
        assert applied["spec"]["platformModelsUrl"] == "http://vllm.fleet:8000/v1"
        assert applied["spec"]["bundleSecretName"] == resources.bundle_secret_name(TENANT_ID)
        assert applied["metadata"]["labels"][resources.LABEL_INSTALLATION] == "tenantry"
        assert not starting.done(), "not running before the operator says so"

        endpoint = f"http://{NAME}.tenantry-tenants.svc:80"
        await cluster.set_status(
            "tenantry-tenants", NAME, {"phase": "Running", "endpoint": endpoint}
        )
        status = await asyncio.wait_for(starting, 10)
        assert status.endpoint == endpoint

        secret = await asyncio.to_thread(
            k8s.CoreV1Api(cluster.api).read_namespaced_secret,
            resources.bundle_secret_name(TENANT_ID),
            "tenantry-tenants",
        )
        bundle = json.loads(base64.b64decode(secret.data["bundle.json"]))
        assert bundle["tenant_id"] == TENANT_ID
        assert base64.b64decode(secret.data["identity-token"]) == b"tgi_identity-for-the-test"

        # The operator reports trouble, then recovery: the reconciler hears both.
        await cluster.set_status("tenantry-tenants", NAME, {"phase": "Failed", "message": "x"})
        await eventually(
            lambda: asyncio.sleep(0, (TENANT_ID, "gateway.crashed") in events),
            timeout=10,
            what="crash reported",
        )
        await cluster.set_status("tenantry-tenants", NAME, {"phase": "Running"})
        await eventually(
            lambda: asyncio.sleep(0, (TENANT_ID, "gateway.restarted") in events),
            timeout=10,
            what="recovery reported",
        )
    finally:
        await runtime.close()


async def test_a_failure_reported_by_the_operator_fails_the_start(cluster: Cluster) -> None:
    runtime = make_runtime(cluster)
    try:
        starting = asyncio.create_task(runtime.ensure_running(spec()))
        await eventually(lambda: cluster.tenant("tenantry-tenants", NAME), timeout=10)
        await cluster.set_status(
            "tenantry-tenants", NAME, {"phase": "Failed", "message": "quota exceeded"}
        )
        with pytest.raises(RuntimeFailure) as failed:
            await asyncio.wait_for(starting, 10)
        assert "quota exceeded" in failed.value.reason
    finally:
        await runtime.close()


async def test_no_operator_means_a_clear_timeout(cluster: Cluster) -> None:
    runtime = make_runtime(cluster, ready_timeout=0.5)
    try:
        with pytest.raises(RuntimeFailure) as failed:
            await runtime.ensure_running(spec())
        assert "did not become ready within 0.5s" in failed.value.reason
    finally:
        await runtime.close()


async def test_suspend_scales_to_zero_and_remove_deletes_both_objects(cluster: Cluster) -> None:
    runtime = make_runtime(cluster, namespace_per_tenant=True, namespace="tenants")
    try:
        starting = asyncio.create_task(runtime.ensure_running(spec("beta")))
        await eventually(lambda: cluster.tenant("tenants-beta", NAME), timeout=10)
        await cluster.set_status("tenants-beta", NAME, {"phase": "Running", "endpoint": "http://x"})
        await asyncio.wait_for(starting, 10)

        fresh = make_runtime(cluster, namespace_per_tenant=True, namespace="tenants")
        await fresh.stop(TENANT_ID)  # finds the namespace by label, as after a restart
        stopped = await cluster.tenant("tenants-beta", NAME)
        assert stopped is not None
        assert stopped["spec"]["suspended"] is True
        assert stopped["spec"]["replicas"] == 0

        # Resuming applies the spec again and takes the fields back from the suspension.
        await fresh.ensure_running(spec("beta"))
        resumed = await cluster.tenant("tenants-beta", NAME)
        assert resumed is not None
        assert (resumed["spec"]["suspended"], resumed["spec"]["replicas"]) == (False, 1)

        await fresh.remove(TENANT_ID)
        assert await cluster.tenant("tenants-beta", NAME) is None
        with pytest.raises(k8s.ApiException) as gone:
            await asyncio.to_thread(
                k8s.CoreV1Api(cluster.api).read_namespaced_secret,
                resources.bundle_secret_name(TENANT_ID),
                "tenants-beta",
            )
        assert gone.value.status == 404
        await fresh.close()
    finally:
        await runtime.close()


async def test_reap_removes_tenants_the_control_plane_no_longer_knows(cluster: Cluster) -> None:
    runtime = make_runtime(cluster)
    try:
        starting = asyncio.create_task(runtime.ensure_running(spec()))
        await eventually(lambda: cluster.tenant("tenantry-tenants", NAME), timeout=10)
        await cluster.set_status("tenantry-tenants", NAME, {"phase": "Running", "endpoint": "x"})
        await asyncio.wait_for(starting, 10)
        assert await runtime.reap({TENANT_ID}) == []
        assert await runtime.reap(set()) == [TENANT_ID]
        assert await cluster.tenant("tenantry-tenants", NAME) is None
    finally:
        await runtime.close()
