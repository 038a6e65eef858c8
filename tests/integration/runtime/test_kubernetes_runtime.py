"""The Kubernetes runtime against a Kubernetes API emulator, through the real ``kubernetes``
client. The test plays the operator: it writes the Tenant's status the way the operator
does, and the runtime, watching the Tenants, turns it into gateway status, failures and
events."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from typing import Any

import kmock
import pytest
from kubernetes import client as k8s

from control_plane.runtime.base import GatewaySpec, RuntimeFailure
from control_plane.runtime.kubernetes import resources
from control_plane.runtime.kubernetes.runtime import KubernetesRuntime
from control_plane.runtime.kubernetes.watch import WatchTimings
from control_plane.settings import KubernetesRuntimeSettings
from tenant_gateway.contract import GatewayBundle
from tests.integration.runtime.kubernetes_cluster import Cluster
from tests.waiting import eventually

TENANT_ID = "01a20000-0000-7000-8000-00000000c0de"
NAME = resources.tenant_name(TENANT_ID)
SHARED = "tenantry-tenants"

EXPIRED = {
    "type": "ERROR",
    "object": {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": 410,
        "reason": "Expired",
        "message": "too old resource version: 1 (42)",
    },
}


def make_runtime(cluster: Cluster, **config: Any) -> KubernetesRuntime:
    settings = KubernetesRuntimeSettings(**{"ready_timeout": 10.0, **config})
    return KubernetesRuntime(
        settings,
        cluster.api,
        platform_models_url="http://vllm.fleet:8000/v1",
        watch_timings=WatchTimings(backoff=0.01),
    )


def spec(slug: str = "acme", tenant_id: str = TENANT_ID) -> GatewaySpec:
    return GatewaySpec(
        tenant_id=tenant_id,
        slug=slug,
        plan="pro",
        identity_token="tgi_identity-for-the-test",
        bundle=GatewayBundle(
            tenant_id=tenant_id,
            tenant_slug=slug,
            keys=[],
            key_digest_key=base64.b64encode(bytes(32)).decode(),
            control_plane_url="http://control-plane.tenantry:8080",
        ),
    )


class Heard:
    """The gateway events the runtime reports, as the reconciler would hear them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, dict[str, Any]]] = []

    async def __call__(self, tenant_id: str, kind: str, message: str, data: dict[str, Any]) -> None:
        self.events.append((tenant_id, kind, message, data))

    async def one(self, kind: str) -> tuple[str, dict[str, Any]]:
        """The message and data of the first event of ``kind``, once it is heard."""

        async def heard() -> tuple[str, dict[str, Any]] | None:
            found = [(m, d) for _, k, m, d in self.events if k == kind]
            return found[0] if found else None

        return await eventually(heard, timeout=10, what=f"{kind} reported")


async def run_tenant(cluster: Cluster, runtime: KubernetesRuntime, namespace: str = SHARED) -> None:
    """Start the tenant and play the operator reporting it running."""
    starting = asyncio.create_task(runtime.ensure_running(spec()))
    await eventually(lambda: cluster.tenant(namespace, NAME), timeout=10, what="Tenant applied")
    endpoint = f"http://{NAME}.{namespace}.svc:80"
    await cluster.set_status(namespace, NAME, {"phase": "Running", "endpoint": endpoint})
    await asyncio.wait_for(starting, 10)


async def test_a_tenant_runs_once_the_operator_reports_it_running(cluster: Cluster) -> None:
    runtime = make_runtime(cluster)
    await runtime.start(Heard())
    try:
        starting = asyncio.create_task(runtime.ensure_running(spec()))
        applied = await eventually(
            lambda: cluster.tenant(SHARED, NAME), timeout=10, what="Tenant applied"
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

        endpoint = f"http://{NAME}.{SHARED}.svc:80"
        await cluster.set_status(SHARED, NAME, {"phase": "Running", "endpoint": endpoint})
        status = await asyncio.wait_for(starting, 10)
        assert status.endpoint == endpoint

        secret = await asyncio.to_thread(
            k8s.CoreV1Api(cluster.api).read_namespaced_secret,
            resources.bundle_secret_name(TENANT_ID),
            SHARED,
        )
        bundle = json.loads(base64.b64decode(secret.data["bundle.json"]))
        assert bundle["tenant_id"] == TENANT_ID
        assert base64.b64decode(secret.data["identity-token"]) == b"tgi_identity-for-the-test"
    finally:
        await runtime.close()


async def test_status_the_operator_writes_arrives_through_one_watch(cluster: Cluster) -> None:
    runtime = make_runtime(cluster)
    heard = Heard()
    await runtime.start(heard)
    try:
        await run_tenant(cluster, runtime)

        await cluster.set_status(
            SHARED, NAME, {"phase": "Provisioning", "message": "the gateway stopped being ready"}
        )
        assert await heard.one("gateway.crashed") == (
            "the gateway stopped being ready",
            {"phase": "Provisioning"},
        )
        await cluster.set_status(SHARED, NAME, {"phase": "Running", "message": "ready"})
        assert await heard.one("gateway.restarted") == (
            "gateway ready again",
            {"endpoint": f"http://{NAME}.{SHARED}.svc:80"},
        )

        # The operator gives up: the reconciler is told to mark the tenant failed and retry.
        await cluster.set_status(
            SHARED, NAME, {"phase": "Failed", "message": "the rollout exceeded its deadline"}
        )
        assert await heard.one("gateway.crash_looping") == (
            "the rollout exceeded its deadline",
            {"phase": "Failed"},
        )

        # Nothing polled: one list began the watch, and that one watch carried every change.
        assert len(cluster.tenant_requests(kmock.action.LIST)) == 1
        assert len(cluster.tenant_requests(kmock.action.WATCH)) == 1
    finally:
        await runtime.close()


async def test_a_running_tenants_resource_deleted_behind_its_back_is_reported(
    cluster: Cluster,
) -> None:
    runtime = make_runtime(cluster)
    heard = Heard()
    await runtime.start(heard)
    try:
        await run_tenant(cluster, runtime)
        await cluster.delete_tenant(SHARED, NAME)
        assert await heard.one("gateway.crash_looping") == (
            "the Tenant resource was deleted",
            {"phase": "Deleted"},
        )
    finally:
        await runtime.close()


@pytest.mark.parametrize(
    "answer",
    [pytest.param((EXPIRED,), id="expired"), pytest.param(500, id="refused")],
)
async def test_a_failed_watch_lists_afresh_and_keeps_reporting(
    cluster: Cluster, answer: Any
) -> None:
    cluster.emulator[kmock.action.WATCH][:1] << answer
    runtime = make_runtime(cluster)
    await runtime.start(Heard())
    try:
        await eventually(
            lambda: asyncio.sleep(0, len(cluster.tenant_requests(kmock.action.WATCH)) >= 2),
            timeout=10,
            what="a second watch",
        )
        assert len(cluster.tenant_requests(kmock.action.LIST)) == 2, "listed afresh"
        await run_tenant(cluster, runtime)  # its status can only arrive through the new watch
    finally:
        await runtime.close()


async def test_a_watch_the_server_ends_resumes_from_the_last_resource_version(
    cluster: Cluster,
) -> None:
    seen = {
        "apiVersion": "tenantry.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {
            "name": NAME,
            "namespace": SHARED,
            "resourceVersion": "42",
            "labels": {resources.LABEL_INSTALLATION: "tenantry"},
        },
    }
    cluster.emulator[kmock.action.WATCH][:1] << ({"type": "MODIFIED", "object": seen},)
    runtime = make_runtime(cluster)
    await runtime.start(Heard())
    try:
        await eventually(
            lambda: asyncio.sleep(0, len(cluster.tenant_requests(kmock.action.WATCH)) >= 2),
            timeout=10,
            what="the watch resumed",
        )
        first, resumed = cluster.tenant_requests(kmock.action.WATCH)[:2]
        assert first.params["resourceVersion"] == "...", "from the list (the emulator's version)"
        assert resumed.params["resourceVersion"] == "42"
        assert len(cluster.tenant_requests(kmock.action.LIST)) == 1, "no relist"
    finally:
        await runtime.close()


async def test_close_stops_the_watch_and_leaves_no_thread(cluster: Cluster) -> None:
    def watch_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "kubernetes-tenant-watch"]

    runtime = make_runtime(cluster)
    await runtime.start(Heard())
    await eventually(
        lambda: asyncio.sleep(0, cluster.tenant_requests(kmock.action.WATCH)),
        timeout=10,
        what="the watch connected",
    )
    assert len(watch_threads()) == 1, "the watch runs on a thread of its own"
    await runtime.close()  # while the watch waits on a quiet connection
    assert watch_threads() == []


async def test_a_failure_reported_by_the_operator_fails_the_start(cluster: Cluster) -> None:
    runtime = make_runtime(cluster)
    try:
        starting = asyncio.create_task(runtime.ensure_running(spec()))
        await eventually(lambda: cluster.tenant(SHARED, NAME), timeout=10)
        await cluster.set_status(SHARED, NAME, {"phase": "Failed", "message": "quota exceeded"})
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
        assert "tenants-beta" in cluster.emulator.namespaces, "kept: it holds the kept volume"
        await fresh.close()
    finally:
        await runtime.close()


async def test_a_namespace_per_tenant_is_made_labelled_before_the_tenants_objects(
    cluster: Cluster,
) -> None:
    runtime = make_runtime(
        cluster, namespace_per_tenant=True, namespace="tenants", retain_volumes=False
    )
    try:
        await run_tenant(cluster, runtime, "tenants-acme")
        made = cluster.emulator.namespaces["tenants-acme"]
        assert made["metadata"]["labels"] == {
            resources.LABEL_INSTALLATION: "tenantry",
            resources.LABEL_TENANT_ID: TENANT_ID,
            resources.LABEL_SLUG: "acme",
            "app.kubernetes.io/managed-by": "tenantry",
            "pod-security.kubernetes.io/enforce": "restricted",
        }
        await runtime.ensure_running(spec())  # again: the namespace exists, and that is fine

        await runtime.remove(TENANT_ID)
        assert "tenants-acme" not in cluster.emulator.namespaces, "no volume kept, nothing left"
    finally:
        await runtime.close()


async def test_a_namespace_the_runtime_did_not_make_outlives_the_tenant(cluster: Cluster) -> None:
    await asyncio.to_thread(
        k8s.CoreV1Api(cluster.api).create_namespace,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tenants-acme"}},
    )
    runtime = make_runtime(
        cluster, namespace_per_tenant=True, namespace="tenants", retain_volumes=False
    )
    try:
        await run_tenant(cluster, runtime, "tenants-acme")
        await runtime.remove(TENANT_ID)
        assert await cluster.tenant("tenants-acme", NAME) is None
        assert "tenants-acme" in cluster.emulator.namespaces, "made by someone else: left"
    finally:
        await runtime.close()


async def test_reap_removes_tenants_the_control_plane_no_longer_knows(cluster: Cluster) -> None:
    runtime = make_runtime(cluster)
    try:
        await run_tenant(cluster, runtime)
        assert await runtime.reap({TENANT_ID}) == []
        assert await runtime.reap(set()) == [TENANT_ID]
        assert await cluster.tenant(SHARED, NAME) is None
    finally:
        await runtime.close()
