"""The real operator (kopf, the ``kubernetes`` client) against kmock's Kubernetes emulator.

The emulator serves HTTP from the test's event loop; the operator runs in a thread of its
own with its own loop, exactly as ``tenantry operator`` starts it (:func:`operators.main.run`),
pointed at the emulator by an :class:`~kubernetes.client.ApiClient`. The test acts as the rest
of the cluster: it creates and deletes Tenants with the ``kubernetes`` client, plays the
kubelet by patching a Deployment's status, and reads what is stored from the emulator.

The emulator's limits shape the fixtures: every resource the operator touches is registered
up front (kopf discovers them), kopf runs cluster-wide, and Tenants are created with the
``uid``, ``resourceVersion`` and ``generation`` a real API server would assign (see
:mod:`tests.integration.operator.emulator`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import kmock
import pytest
from kubernetes import client as k8s

from operators.config import OperatorConfig
from operators.main import run
from operators.tenant.spec import GROUP, PLURAL, VERSION, Storage, TenantSpec, tenant_resource
from tests.integration.operator.emulator import (
    TENANTS,
    WATCHED,
    ApiServerEmulator,
    register,
)
from tests.waiting import eventually

NAMESPACE = "tenants"
TENANT_ID = "01a20000-0000-7000-8000-00000000c0de"


class Cluster:
    """The emulated cluster, as the test sees it."""

    def __init__(self, emulator: ApiServerEmulator, api: k8s.ApiClient) -> None:
        self.emulator = emulator
        self.api = api
        self.custom: Any = k8s.CustomObjectsApi(api)
        self.core: Any = k8s.CoreV1Api(api)
        self.apps: Any = k8s.AppsV1Api(api)
        self.networking: Any = k8s.NetworkingV1Api(api)

    # -- reading what is stored --------------------------------------------------------------

    def watched(self) -> set[str]:
        """The resources someone has opened a watch on."""
        return self.emulator.watched_resources

    def stored(self, resource: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        for (kind, ns, found), obj in self.emulator.objects.items():
            if kind == resource and ns == namespace and found == name and not obj.deleted:
                return obj.raw
        return None

    async def appears(self, resource: str, name: str, **wait: Any) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            return self.stored(resource, name)

        return await eventually(probe, what=f"{resource} {name} to exist", **wait)

    async def vanishes(self, resource: str, name: str) -> None:
        async def probe() -> bool:
            return self.stored(resource, name) is None

        await eventually(probe, what=f"{resource} {name} to be gone")

    async def tenant_status(
        self, name: str, *, conditions: dict[str, tuple[str, str]] | None = None, **expected: Any
    ) -> dict[str, Any]:
        """Wait until the Tenant's status has every ``expected`` field and every condition
        ``{type: (status, reason)}`` in ``conditions``; return the status."""

        async def probe() -> dict[str, Any] | None:
            tenant = self.stored(TENANTS, name) or {}
            status: dict[str, Any] = tenant.get("status") or {}
            found = {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions", [])}
            fields = all(status.get(k) == v for k, v in expected.items())
            return status if fields and (conditions or {}).items() <= found.items() else None

        try:
            return await eventually(probe, timeout=15, what=f"Tenant {name} status")
        except AssertionError as exc:
            tenant = self.stored(TENANTS, name) or {}
            wanted = {**expected, "conditions": conditions}
            raise AssertionError(f"{exc}: wanted {wanted}, found {tenant.get('status')}") from None

    # -- acting as people and the kubelet ----------------------------------------------------

    async def create_tenant(self, body: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            body["metadata"]["namespace"],
            PLURAL,
            body,
        )

    async def patch_tenant(self, name: str, patch: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            NAMESPACE,
            PLURAL,
            name,
            patch,
        )

    async def delete_tenant(self, name: str) -> None:
        await asyncio.to_thread(
            self.custom.delete_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL, name
        )

    async def pod_ready(self, name: str, ready: int = 1) -> None:
        """Play the kubelet and the Deployment controller: report ``ready`` ready pods."""
        status = {"replicas": ready, "readyReplicas": ready, "availableReplicas": ready}
        await asyncio.to_thread(
            self.apps.patch_namespaced_deployment_status,
            name,
            NAMESPACE,
            {"status": status},
            _preload_content=False,
        )


def tenant_body(
    name: str = "tenant-acme",
    *,
    retain_policy: str = "delete",
    suspended: bool = False,
    uid: str = "7f1c0000-0000-4000-8000-0000000000a1",
    **spec: Any,
) -> dict[str, Any]:
    """A Tenant as the control plane would apply it (with a known uid, to check owners by)."""
    typed = TenantSpec(
        tenant_id=TENANT_ID,
        slug="acme",
        plan="pro",
        image="registry.example/tenantry/tenant-gateway:1.0",
        bundle_secret_name=f"{name}-bundle",
        platform_models_url="http://vllm.fleet.svc:8000/v1",
        storage=Storage(retain_policy="delete" if retain_policy == "delete" else "retain"),
        suspended=suspended,
    )
    body = tenant_resource(name, NAMESPACE, typed, labels={"tenantry.dev/tenant-id": TENANT_ID})
    body["spec"].update(spec)
    body["metadata"]["uid"] = uid
    return body


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with ApiServerEmulator() as emulator, kmock.Server(emulator) as server:
        register(emulator)
        api = k8s.ApiClient(k8s.Configuration(host=str(server.url).rstrip("/")))
        try:
            yield Cluster(emulator, api)
        finally:
            await asyncio.to_thread(api.close)


class RunningOperator:
    def __init__(self, thread: threading.Thread, stop: threading.Event) -> None:
        self.thread = thread
        self.stop = stop


@pytest.fixture
def operator_config() -> OperatorConfig:
    """Fast pacing for tests: quick retries, and no resync timer unless a test asks for one
    (a timer kopf starts while stopping holds the operator's exit up for five seconds)."""
    return OperatorConfig(resync_interval=None, retry_base_delay=0.2, retry_max_delay=1.0)


@pytest.fixture
async def operator(
    cluster: Cluster, operator_config: OperatorConfig
) -> AsyncIterator[RunningOperator]:
    """``tenantry operator`` (all namespaces, standalone) in a thread, stopped afterwards."""
    stop, ready = threading.Event(), threading.Event()
    outcome: list[BaseException | int] = []

    def main() -> None:
        try:
            outcome.append(
                run(
                    None,
                    standalone=True,
                    api_client=cluster.api,
                    config=operator_config,
                    stop_flag=stop,
                    ready_flag=ready,
                )
            )
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=main, name="tenant-operator", daemon=True)
    thread.start()
    try:
        await eventually(
            lambda: asyncio.sleep(0, ready.is_set() or bool(outcome)),
            timeout=10,
            what="the operator to start",
        )
        assert not outcome, f"the operator stopped at start: {outcome}"
        await eventually(
            lambda: asyncio.sleep(0, cluster.watched() >= WATCHED),
            timeout=10,
            what="the operator to watch Tenants and their children",
        )
        yield RunningOperator(thread, stop)
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 20)
    assert not thread.is_alive(), "the operator did not stop"
    assert outcome == [0], f"the operator ended badly: {outcome}"
