"""The Kubernetes runtime: a ``Tenant`` resource per tenant, reconciled by the operator.

The control plane server-side-applies two objects per tenant (see :mod:`.resources`) with
the official ``kubernetes`` client, in worker threads so the event loop never blocks; with a
namespace per tenant it first creates the tenant's namespace. It learns what became of them
by watching the installation's Tenants (:mod:`.watch`, a thread that hands each change to the
loop): ``Running`` with an endpoint is a running gateway, ``Failed`` a failure whose message
the reconciler records. Changes to tenants it runs become gateway events (see
:mod:`.sightings`).

Applying is "patch, else create": a real API server creates on an apply-patch, and an
emulator that does not still gets the object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from control_plane.runtime.base import (
    GatewayListener,
    GatewaySpec,
    GatewayStatus,
    RuntimeFailure,
)
from control_plane.runtime.kubernetes import resources, sightings
from control_plane.runtime.kubernetes.watch import (
    Changed,
    Listed,
    Observation,
    TenantWatch,
    WatchTimings,
)
from control_plane.settings import KubernetesRuntimeSettings

log = logging.getLogger(__name__)

APPLY = "application/apply-patch+yaml"


async def _no_listener(_tenant_id: str, _type: str, _message: str, _data: dict[str, Any]) -> None:
    return None


def _failure(action: str, exc: ApiException) -> RuntimeFailure:
    reason = exc.reason or "error"
    return RuntimeFailure(f"Kubernetes API refused to {action}: {exc.status} {reason}")


class KubernetesRuntime:
    def __init__(
        self,
        config: KubernetesRuntimeSettings,
        api_client: k8s.ApiClient,
        *,
        platform_models_url: str | None = None,
        watch_timings: WatchTimings | None = None,
    ) -> None:
        self.config = config
        self.api_client = api_client
        # Typed loosely: bodies are plain dicts (the client accepts them) and custom objects
        # come back as dicts.
        self.custom: Any = k8s.CustomObjectsApi(api_client)
        self.core: Any = k8s.CoreV1Api(api_client)
        self.platform_models_url = platform_models_url
        self.watch_timings = watch_timings or WatchTimings()
        self._namespaces: dict[str, str] = {}
        self._phases: dict[str, str] = {}
        """The last phase of each tenant this control plane runs (the ones it reports on)."""
        self._sightings = sightings.TenantSightings()
        self._listener: GatewayListener = _no_listener
        self._watch: TenantWatch | None = None
        self._observer: asyncio.Task[None] | None = None

    # -- placement --------------------------------------------------------------------------

    def namespace_for(self, slug: str) -> str:
        if self.config.namespace_per_tenant:
            return f"{self.config.namespace}-{slug}"[:63].rstrip("-")
        return self.config.namespace

    async def _locate(self, tenant_id: str) -> str | None:
        """The namespace of the tenant's resource, or None if it has none."""
        if tenant_id in self._namespaces:
            return self._namespaces[tenant_id]
        for item in await self._list_tenants(f"{resources.LABEL_TENANT_ID}={tenant_id}"):
            namespace = str(item["metadata"]["namespace"])
            self._namespaces[tenant_id] = namespace
            return namespace
        return None

    # -- Runtime interface ------------------------------------------------------------------

    async def start(self, listener: GatewayListener) -> None:
        self._listener = listener
        self._watching()

    async def ensure_running(self, spec: GatewaySpec) -> GatewayStatus:
        self._watching()
        namespace = self.namespace_for(spec.slug)
        if self.config.namespace_per_tenant:
            await self._create_namespace(
                resources.tenant_namespace(
                    name=namespace,
                    installation=self.config.installation,
                    tenant_id=spec.tenant_id,
                    slug=spec.slug,
                )
            )
        self._namespaces[spec.tenant_id] = namespace
        await self._apply_secret(
            resources.bundle_secret(
                namespace=namespace,
                installation=self.config.installation,
                bundle=spec.bundle,
                identity_token=spec.identity_token,
            )
        )
        await self._apply_tenant(self._tenant(spec, namespace, suspended=False))
        status = await self._await_running(spec.tenant_id, namespace)
        self._phases[spec.tenant_id] = "Running"
        return GatewayStatus(tenant_id=spec.tenant_id, endpoint=status["endpoint"])

    async def stop(self, tenant_id: str) -> None:
        namespace = await self._locate(tenant_id)
        if namespace is None:
            return
        self._phases.pop(tenant_id, None)
        patch = {"spec": {"suspended": True, "replicas": 0}}
        try:
            await asyncio.to_thread(
                self.custom.patch_namespaced_custom_object,
                resources.GROUP,
                resources.VERSION,
                namespace,
                resources.PLURAL,
                resources.tenant_name(tenant_id),
                patch,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise _failure("suspend the tenant", exc) from None

    async def remove(self, tenant_id: str) -> None:
        namespace = await self._locate(tenant_id)
        self._phases.pop(tenant_id, None)
        if namespace is None:
            return
        self._watching()
        tenant = await self._get_tenant(tenant_id, namespace)
        await self._delete(
            self.custom.delete_namespaced_custom_object,
            resources.GROUP,
            resources.VERSION,
            namespace,
            resources.PLURAL,
            resources.tenant_name(tenant_id),
        )
        await self._delete(
            self.core.delete_namespaced_secret, resources.bundle_secret_name(tenant_id), namespace
        )
        await self._await_gone(tenant_id, namespace)
        if self.config.namespace_per_tenant and not self._keeps_volume(tenant):
            await self._remove_namespace(tenant_id, namespace)
        self._namespaces.pop(tenant_id, None)
        self._sightings.forget(tenant_id)

    async def reap(self, live_tenant_ids: set[str]) -> list[str]:
        selector = f"{resources.LABEL_INSTALLATION}={self.config.installation}"
        reaped = []
        for item in await self._list_tenants(selector):
            tenant_id = item["metadata"].get("labels", {}).get(resources.LABEL_TENANT_ID)
            if tenant_id and tenant_id not in live_tenant_ids:
                log.warning("removing the Tenant resource of unknown tenant %s", tenant_id)
                self._namespaces[tenant_id] = item["metadata"]["namespace"]
                await self.remove(tenant_id)
                reaped.append(tenant_id)
        return reaped

    async def close(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            patience = self.watch_timings.request_timeout + 5
            if not await asyncio.to_thread(watch.stop, patience):
                log.warning("the Tenant watch did not stop within %gs", patience)
        task, self._observer = self._observer, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(self.api_client.close)

    # -- the API, off the event loop --------------------------------------------------------

    def _tenant(self, spec: GatewaySpec, namespace: str, *, suspended: bool) -> dict[str, Any]:
        return resources.tenant_resource(
            namespace=namespace,
            installation=self.config.installation,
            tenant_id=spec.tenant_id,
            slug=spec.slug,
            plan=spec.plan,
            image=self.config.gateway_image,
            suspended=suspended,
            platform_models_url=spec.bundle.platform_models_url or self.platform_models_url,
            control_plane_url=spec.bundle.control_plane_url,
            storage_class=self.config.storage_class,
            retain_volume=self.config.retain_volumes,
        )

    async def _apply_tenant(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        namespace: str = meta["namespace"]
        try:
            await asyncio.to_thread(
                self.custom.patch_namespaced_custom_object,
                resources.GROUP,
                resources.VERSION,
                namespace,
                resources.PLURAL,
                meta["name"],
                body,
                field_manager=resources.FIELD_MANAGER,
                force=True,
                _content_type=APPLY,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise _failure("apply the Tenant resource", exc) from None
            try:
                await asyncio.to_thread(
                    self.custom.create_namespaced_custom_object,
                    resources.GROUP,
                    resources.VERSION,
                    namespace,
                    resources.PLURAL,
                    body,
                )
            except ApiException as created:
                raise _failure("create the Tenant resource", created) from None

    async def _apply_secret(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        try:
            await asyncio.to_thread(
                self.core.patch_namespaced_secret,
                meta["name"],
                meta["namespace"],
                body,
                field_manager=resources.FIELD_MANAGER,
                force=True,
                _content_type=APPLY,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise _failure("apply the bundle Secret", exc) from None
            try:
                await asyncio.to_thread(self.core.create_namespaced_secret, meta["namespace"], body)
            except ApiException as created:
                raise _failure("create the bundle Secret", created) from None

    async def _create_namespace(self, body: dict[str, Any]) -> None:
        """Create the tenant's namespace unless it exists; one that exists is left as it is
        (an administrator may have made it), so it may lack this installation's labels."""
        try:
            await asyncio.to_thread(self.core.create_namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise _failure("create the tenant's namespace", exc) from None

    async def _remove_namespace(self, tenant_id: str, namespace: str) -> None:
        """Delete the tenant's namespace if this installation made it for this tenant."""
        try:
            found = await asyncio.to_thread(self.core.read_namespace, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise _failure("read the tenant's namespace", exc) from None
        labels = found.metadata.labels or {}
        if (
            labels.get(resources.LABEL_INSTALLATION) != self.config.installation
            or labels.get(resources.LABEL_TENANT_ID) != tenant_id
        ):
            return  # not made for this tenant by this installation: not ours to delete
        await self._delete(self.core.delete_namespace, namespace)

    def _keeps_volume(self, tenant: dict[str, Any] | None) -> bool:
        """Whether the operator keeps the tenant's volume, by the Tenant's own retain policy
        (the setting may have changed since it was applied)."""
        if tenant is None:
            return self.config.retain_volumes
        storage = (tenant.get("spec") or {}).get("storage") or {}
        return bool(storage.get("retainPolicy", resources.DEFAULT_RETAIN_POLICY) != "delete")

    async def _delete(self, call: Any, *args: Any) -> None:
        try:
            await asyncio.to_thread(call, *args)
        except ApiException as exc:
            if exc.status != 404:
                raise _failure("delete a tenant object", exc) from None

    async def _get_tenant(self, tenant_id: str, namespace: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await asyncio.to_thread(
                self.custom.get_namespaced_custom_object,
                resources.GROUP,
                resources.VERSION,
                namespace,
                resources.PLURAL,
                resources.tenant_name(tenant_id),
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _failure("read the Tenant resource", exc) from None
        return found

    async def _list_tenants(self, selector: str) -> list[dict[str, Any]]:
        """Tenants matching ``selector``: in every namespace with a namespace per tenant,
        else only in the tenants namespace (all a namespaced Role allows)."""
        try:
            if self.config.namespace_per_tenant:
                found = await asyncio.to_thread(
                    self.custom.list_cluster_custom_object,
                    resources.GROUP,
                    resources.VERSION,
                    resources.PLURAL,
                    label_selector=selector,
                )
            else:
                found = await asyncio.to_thread(
                    self.custom.list_namespaced_custom_object,
                    resources.GROUP,
                    resources.VERSION,
                    self.config.namespace,
                    resources.PLURAL,
                    label_selector=selector,
                )
        except ApiException as exc:
            raise _failure("list Tenant resources", exc) from None
        items: list[dict[str, Any]] = found.get("items", [])
        # Filter here too: a selector is a request, and some servers ignore it.
        key, _, value = selector.partition("=")
        return [i for i in items if i.get("metadata", {}).get("labels", {}).get(key) == value]

    # -- watching ---------------------------------------------------------------------------

    def _watching(self) -> None:
        """Start the watch unless it runs: at start, or at the first wait for a Tenant."""
        if self._watch is not None:
            return
        loop = asyncio.get_running_loop()
        observations: asyncio.Queue[Observation] = asyncio.Queue()
        self._watch = TenantWatch(
            self.custom,
            namespace=None if self.config.namespace_per_tenant else self.config.namespace,
            installation=self.config.installation,
            deliver=lambda seen: _hand_over(loop, observations, seen),
            timings=self.watch_timings,
        )
        self._observer = loop.create_task(
            self._observe(observations), name="kubernetes-tenant-observer"
        )
        self._watch.start()

    async def _observe(self, observations: asyncio.Queue[Observation]) -> None:
        while True:
            seen = await observations.get()
            if isinstance(seen, Listed):
                listed = {sightings.tenant_id_of(t): t for t in seen.tenants}
                for gone in self._sightings.present() - listed.keys():
                    await self._sighted(gone, None)
                for tenant_id, found in listed.items():
                    await self._sighted(tenant_id, found)
            elif isinstance(seen, Changed):
                changed = None if seen.type == "DELETED" else seen.tenant
                await self._sighted(sightings.tenant_id_of(seen.tenant), changed)

    async def _sighted(self, tenant_id: str | None, tenant: dict[str, Any] | None) -> None:
        if tenant_id is None:
            return
        await self._sightings.record(tenant_id, tenant)
        before = self._phases.get(tenant_id)
        if before is None:
            return  # only tenants this control plane runs and has not stopped
        self._phases[tenant_id] = sightings.phase_of(tenant)
        event = sightings.gateway_event(before, tenant)
        if event is None:
            return
        try:
            await self._listener(tenant_id, *event)
        except Exception:
            # The reconciler's trouble must not end the observer.
            log.exception("handling %s of tenant %s failed", event[0], tenant_id)

    async def _await_running(self, tenant_id: str, namespace: str) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + self.config.ready_timeout
        after = self._sightings.number(tenant_id)
        body = await self._get_tenant(tenant_id, namespace)
        while True:
            if body is None:
                raise RuntimeFailure("the Tenant resource vanished while starting")
            status: dict[str, Any] = body.get("status") or {}
            phase = status.get("phase")
            current = sightings.describes_spec(body)
            if phase == "Running" and status.get("endpoint") and current:
                return status
            if phase == "Failed" and current:
                reason = status.get("message") or "no reason given"
                raise RuntimeFailure(f"the operator reports the gateway failed: {reason}")
            found = await self._sightings.next(tenant_id, after, deadline)
            if found is None:
                last = f"phase {phase or 'unknown'}" + (
                    f": {status['message']}" if status.get("message") else ""
                )
                raise RuntimeFailure(
                    f"the gateway did not become ready within {self.config.ready_timeout:g}s "
                    f"({last})"
                )
            after, body = found.number, found.tenant

    async def _await_gone(self, tenant_id: str, namespace: str) -> None:
        deadline = asyncio.get_running_loop().time() + self.config.ready_timeout
        after = self._sightings.number(tenant_id)
        body = await self._get_tenant(tenant_id, namespace)
        while body is not None:
            found = await self._sightings.next(tenant_id, after, deadline)
            if found is None:
                raise RuntimeFailure(
                    "the Tenant resource was not removed in time (is the operator running?)"
                )
            after, body = found.number, found.tenant


def _hand_over(
    loop: asyncio.AbstractEventLoop,
    observations: asyncio.Queue[Observation],
    seen: Observation,
) -> None:
    """From the watch's thread onto the loop's queue (dropped once the loop is closed)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(observations.put_nowait, seen)


def api_client_from_environment() -> k8s.ApiClient:
    """The in-cluster service account when running in a pod, else the kubeconfig."""
    from kubernetes import config as kube_config

    try:
        kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kube_config.ConfigException:
        try:
            kube_config.load_kube_config()  # type: ignore[no-untyped-call]
        except (kube_config.ConfigException, OSError) as exc:
            raise RuntimeFailure(
                "TENANTRY_RUNTIME=kubernetes, but there is neither an in-cluster service "
                f"account nor a usable kubeconfig: {exc}"
            ) from None
    return k8s.ApiClient()
