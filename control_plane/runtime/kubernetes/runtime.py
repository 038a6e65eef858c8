"""The Kubernetes runtime: a ``Tenant`` resource per tenant, reconciled by the operator.

The control plane server-side-applies two objects per tenant (see :mod:`.resources`) with
the official ``kubernetes`` client, in worker threads so the event loop never blocks, and
reads the Tenant's status back: ``Running`` with an endpoint is a running gateway, ``Failed``
a failure whose message the reconciler records. A background observer turns status changes
of running tenants into the same gateway events the local runtime reports
(``gateway.crashed`` when a running tenant turns Degraded or Failed, ``gateway.restarted``
when it is Ready again).

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
from control_plane.runtime.kubernetes import resources
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
        poll_interval: float = 0.5,
        observe_interval: float = 5.0,
    ) -> None:
        self.config = config
        self.api_client = api_client
        # Typed loosely: bodies are plain dicts (the client accepts them) and custom objects
        # come back as dicts.
        self.custom: Any = k8s.CustomObjectsApi(api_client)
        self.core: Any = k8s.CoreV1Api(api_client)
        self.platform_models_url = platform_models_url
        self.poll_interval = poll_interval
        self.observe_interval = observe_interval
        self._namespaces: dict[str, str] = {}
        self._phases: dict[str, str] = {}
        self._listener: GatewayListener = _no_listener
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
        self._observer = asyncio.create_task(self._observe(), name="kubernetes-tenant-observer")

    async def ensure_running(self, spec: GatewaySpec) -> GatewayStatus:
        namespace = self.namespace_for(spec.slug)
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
        self._namespaces.pop(tenant_id, None)

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
        try:
            found = await asyncio.to_thread(
                self.custom.list_cluster_custom_object,
                resources.GROUP,
                resources.VERSION,
                resources.PLURAL,
                label_selector=selector,
            )
        except ApiException as exc:
            raise _failure("list Tenant resources", exc) from None
        items: list[dict[str, Any]] = found.get("items", [])
        # Filter here too: a selector is a request, and some servers ignore it.
        key, _, value = selector.partition("=")
        return [i for i in items if i.get("metadata", {}).get("labels", {}).get(key) == value]

    # -- waiting and watching ---------------------------------------------------------------

    async def _await_running(self, tenant_id: str, namespace: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.ready_timeout
        last = "no status yet"
        while True:
            body = await self._get_tenant(tenant_id, namespace)
            if body is None:
                raise RuntimeFailure("the Tenant resource vanished while starting")
            status: dict[str, Any] = body.get("status") or {}
            phase = status.get("phase")
            current = _observed(body)
            if phase == "Running" and status.get("endpoint") and current:
                return status
            if phase == "Failed" and current:
                reason = status.get("message") or "no reason given"
                raise RuntimeFailure(f"the operator reports the gateway failed: {reason}")
            last = f"phase {phase or 'unknown'}" + (
                f": {status['message']}" if status.get("message") else ""
            )
            if loop.time() >= deadline:
                raise RuntimeFailure(
                    f"the gateway did not become ready within {self.config.ready_timeout:g}s "
                    f"({last})"
                )
            await asyncio.sleep(self.poll_interval)

    async def _await_gone(self, tenant_id: str, namespace: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.ready_timeout
        while await self._get_tenant(tenant_id, namespace) is not None:
            if loop.time() >= deadline:
                raise RuntimeFailure(
                    "the Tenant resource was not removed in time (is the operator running?)"
                )
            await asyncio.sleep(self.poll_interval)

    async def _observe(self) -> None:
        selector = f"{resources.LABEL_INSTALLATION}={self.config.installation}"
        while True:
            await asyncio.sleep(self.observe_interval)
            try:
                items = await self._list_tenants(selector)
            except RuntimeFailure as exc:
                log.warning("cannot observe Tenant resources: %s", exc.reason)
                continue
            for item in items:
                await self._notice(item)

    async def _notice(self, item: dict[str, Any]) -> None:
        tenant_id = item["metadata"].get("labels", {}).get(resources.LABEL_TENANT_ID)
        if tenant_id is None or tenant_id not in self._phases:
            return  # only tenants this control plane started and has not stopped
        status = item.get("status") or {}
        phase = str(status.get("phase") or "")
        before = self._phases[tenant_id]
        if phase == before:
            return
        self._phases[tenant_id] = phase
        message = str(status.get("message") or phase)
        if before == "Running" and phase in ("Failed", "Degraded", "Provisioning"):
            await self._listener(tenant_id, "gateway.crashed", message, {"phase": phase})
        elif phase == "Running":
            await self._listener(
                tenant_id,
                "gateway.restarted",
                "gateway ready again",
                {"endpoint": status.get("endpoint")},
            )


def _observed(body: dict[str, Any]) -> bool:
    """Whether the status describes the current spec (where the server keeps generations)."""
    generation = body.get("metadata", {}).get("generation")
    observed = (body.get("status") or {}).get("observedGeneration")
    return generation is None or observed is None or observed >= generation


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
