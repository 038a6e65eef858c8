"""The real operator (kopf, the ``kubernetes`` client) against kmock's Kubernetes emulator.

The emulator serves HTTP from the test's event loop; the operator runs in a thread of its
own with its own loop, exactly as ``tenantry operator`` starts it (:func:`operators.main.run`),
pointed at the emulator by an :class:`~kubernetes.client.ApiClient`. The test acts as the rest
of the cluster: it creates and deletes Tenants with the ``kubernetes`` client, plays the
kubelet by patching a Deployment's status, and reads what is stored from the emulator.

The emulator's limits shape the fixtures: every resource the operator touches is registered
up front (kopf discovers them), kopf runs cluster-wide, and Tenants are created with the
``uid``, ``resourceVersion`` and ``generation`` a real API server would assign.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import kmock
import pytest
from kubernetes import client as k8s

from operators.config import OperatorConfig
from operators.main import run
from operators.tenant.spec import GROUP, PLURAL, VERSION, Storage, TenantSpec, tenant_resource
from tests.waiting import eventually

NAMESPACE = "tenants"
TENANT_ID = "01a20000-0000-7000-8000-00000000c0de"
TENANTS = f"{GROUP}/{VERSION}/{PLURAL}"
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}

RESOURCES = {
    TENANTS: ("Tenant", True, {"status"}),
    "apps/v1/deployments": ("Deployment", True, {"status"}),
    "v1/services": ("Service", True, set()),
    "v1/serviceaccounts": ("ServiceAccount", True, set()),
    "v1/persistentvolumeclaims": ("PersistentVolumeClaim", True, set()),
    "v1/secrets": ("Secret", True, set()),
    "v1/events": ("Event", True, set()),
    "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", True, set()),
    # Discovered only: kopf waits for both kinds to be known, even cluster-wide.
    "v1/namespaces": ("Namespace", False, set()),
    "apiextensions.k8s.io/v1/customresourcedefinitions": (
        "CustomResourceDefinition",
        False,
        set(),
    ),
}


class ApiServerEmulator(kmock.KubernetesEmulator):
    """kmock's emulator, plus what a real API server stamps on every write: a new
    ``resourceVersion`` each time, a ``uid`` on creation, and a ``generation`` that grows when
    the spec changes. kopf relies on resource versions to tell its own writes from stale
    events; without them it re-handles old snapshots of a Tenant.

    JSON patches are applied without their ``test`` operations: kmock may drop an event while
    a watch starts, and kopf, refused by a failed test, would wait for that event forever.
    (As before, kmock does no optimistic concurrency.)"""

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource is not None and request.action == kmock.action.CREATE:
            if isinstance(request.data, dict):
                self._stamp_creation(request.data)
        elif request.resource is not None and request.action == kmock.action.UPDATE:
            if isinstance(request.data, dict) and request.name is not None:
                self._stamp_merge(request)
            elif isinstance(request.data, list):
                request.data[:] = [op for op in request.data if op.get("op") != "test"]
                request.data.append(
                    {"op": "add", "path": "/metadata/resourceVersion", "value": _revision()}
                )
        return await super()._handle(request)

    @staticmethod
    def _stamp_creation(data: dict[str, Any]) -> None:
        meta = data.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta["resourceVersion"] = _revision()
        meta.setdefault("generation", 1)

    def _stamp_merge(self, request: kmock.Request) -> None:
        meta = request.data.setdefault("metadata", {})
        meta["resourceVersion"] = _revision()
        if "spec" in request.data and request.subresource is None:
            current = self._current(request) or {}
            generation = current.get("metadata", {}).get("generation") or 0
            meta.setdefault("generation", generation + 1)

    def _current(self, request: kmock.Request) -> dict[str, Any] | None:
        for (resource, namespace, name), obj in self.objects.items():
            same = (resource, namespace, name) == (
                request.resource,
                request.namespace,
                request.name,
            )
            if same and not obj.deleted:
                found: dict[str, Any] = obj.raw
                return found
        return None


def _revision() -> str:
    return str(next(_REVISIONS))


_REVISIONS = itertools.count(1000)


WATCHED = {
    TENANTS,
    "apps/v1/deployments",
    "v1/services",
    "v1/serviceaccounts",
    "v1/persistentvolumeclaims",
    "networking.k8s.io/v1/networkpolicies",
}
"""What the operator watches; kmock can drop an event while a watch starts, so the tests begin
once every watch is open."""


class Cluster:
    """The emulated cluster, as the test sees it."""

    def __init__(self, emulator: ApiServerEmulator, api: k8s.ApiClient) -> None:
        self.emulator = emulator
        self.api = api
        self.custom: Any = k8s.CustomObjectsApi(api)
        self.core: Any = k8s.CoreV1Api(api)
        self.apps: Any = k8s.AppsV1Api(api)

    # -- reading what is stored --------------------------------------------------------------

    def watched(self) -> set[str]:
        """The resources someone has opened a watch on."""
        return {
            f"{r.resource.group}/{r.resource.version}/{r.resource.plural}".lstrip("/")
            for r in self.emulator[kmock.action.WATCH]
            if r.resource is not None
        }

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
        for resource, (kind, namespaced, subresources) in RESOURCES.items():
            emulator.resources[resource] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, verbs=VERBS, subresources=subresources
            )
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
