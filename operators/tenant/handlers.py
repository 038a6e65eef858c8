"""The kopf handlers of the Tenant operator: check, delegate, classify.

Each handler only picks the Tenant out of kopf's arguments, hands the work to
:class:`~operators.tenant.reconciler.TenantReconciler`, and turns what went wrong into what
kopf should do next:

* an invalid spec or a refusal the API will repeat (403, 422...) is written into the status
  (phase ``Failed``, ``Degraded=True``) and raised as ``kopf.PermanentError``: no retries
  until the Tenant changes (or the periodic resync gets past it);
* a failure that may pass (5xx, 409, 429, no connection) is ``kopf.TemporaryError`` with an
  exponential delay, honouring ``Retry-After``.

What is watched:

* Tenants: create, update and resume build the children; a timer re-applies them every
  ``resync_interval`` (putting back hand edits); deletion, behind kopf's finalizer, removes
  the volume claim when the storage retain policy says ``delete``.
* The children (labelled ``app.kubernetes.io/managed-by: tenantry-operator``): a deleted child
  is rebuilt at once, and every change of the gateway Deployment re-reports the Tenant's status,
  which is how a Tenant turns ``Running`` when its pod gets ready. A Deployment that merely
  appears (created, or listed when a watch starts) is not reported on: whoever built it, a
  reconcile, reports right after, and so does the reconcile of every Tenant when the operator
  starts; with a thousand Tenants, that is two reads per Tenant saved on every start.

The handlers are registered on a registry of their own (:func:`build_registry`), so the
operator is started with exactly these and tests never share kopf's global registry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from operators.config import OperatorConfig
from operators.errors import (
    InvalidTenantSpec,
    KubernetesError,
    KubernetesRefused,
    KubernetesUnavailable,
    OperatorError,
)
from operators.tenant import manifests
from operators.tenant.reconciler import TenantReconciler, TenantRef, is_deleting
from operators.tenant.spec import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)

CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("", "v1", "serviceaccounts"),
    ("", "v1", "persistentvolumeclaims"),
    ("networking.k8s.io", "v1", "networkpolicies"),
)
CHILD_KINDS = frozenset(
    {"Deployment", "Service", "ServiceAccount", "PersistentVolumeClaim", "NetworkPolicy"}
)
OWNED = {manifests.LABEL_MANAGED_BY: manifests.MANAGED_BY}
APPEARED = frozenset({"ADDED", None})
"""Event types of an object that appeared: created, or listed as a watch started (None)."""


class TenantHandlers:
    """The handlers' bodies; :func:`build_registry` wires them to kopf."""

    def __init__(self, reconciler: TenantReconciler, config: OperatorConfig) -> None:
        self.reconciler = reconciler
        self.config = config

    async def ensure(self, body: Mapping[str, Any], retry: int) -> None:
        """Create, update, resume: build every child and report."""
        ref = TenantRef.of(body)
        try:
            await self.reconciler.reconcile(ref, body.get("spec") or {})
        except (InvalidTenantSpec, KubernetesRefused) as exc:
            await self._record(ref, exc)
            raise kopf.PermanentError(str(exc)) from exc
        except KubernetesUnavailable as exc:
            delay = self.config.retry_delay(retry, exc.retry_after)
            raise kopf.TemporaryError(str(exc), delay=delay) from exc

    async def resync(self, body: Mapping[str, Any]) -> None:
        """The timer: the same work as :meth:`ensure`, but a failure only waits for the next
        tick (raising would stop kopf's timer for this Tenant)."""
        if is_deleting(body):
            return
        ref = TenantRef.of(body)
        try:
            await self.reconciler.reconcile(ref, body.get("spec") or {})
        except (InvalidTenantSpec, KubernetesRefused) as exc:
            await self._record(ref, exc)
        except KubernetesUnavailable as exc:
            log.warning("resync of Tenant %s/%s failed: %s", ref.namespace, ref.name, exc)

    async def release(self, body: Mapping[str, Any], retry: int) -> None:
        """Deletion: honour the storage retain policy, then let kopf drop the finalizer."""
        ref = TenantRef.of(body)
        try:
            await self.reconciler.release(ref, body.get("spec") or {})
        except KubernetesRefused as exc:
            raise kopf.PermanentError(str(exc)) from exc
        except KubernetesUnavailable as exc:
            delay = self.config.retry_delay(retry, exc.retry_after)
            raise kopf.TemporaryError(str(exc), delay=delay) from exc

    @staticmethod
    def concerns(event_type: str | None, plural: str) -> bool:
        """Whether a child's event calls for work: a child vanished, or the gateway's
        Deployment changed. The rest (most events) are filtered out before kopf invokes
        a handler, so they cost no handler run and no log line."""
        return event_type == "DELETED" or (plural == "deployments" and event_type not in APPEARED)

    async def child_event(
        self, event_type: str | None, plural: str, namespace: str | None, labels: Mapping[str, str]
    ) -> None:
        """A child changed or vanished: rebuild it, or re-report the gateway's readiness."""
        tenant = labels.get(manifests.LABEL_INSTANCE)
        if not tenant or not namespace or not self.concerns(event_type, plural):
            return
        try:
            if event_type == "DELETED":
                await self.reconciler.restore(namespace, tenant)
            else:
                await self.reconciler.refresh(namespace, tenant)
        except OperatorError as exc:
            # Event handlers are not retried; the resync timer comes back to it.
            log.warning("Tenant %s/%s: %s", namespace, tenant, exc)

    async def _record(self, ref: TenantRef, exc: OperatorError) -> None:
        try:
            await self.reconciler.record_failure(ref, exc)
        except KubernetesError as unrecorded:
            log.warning(
                "cannot record the failure of %s/%s: %s", ref.namespace, ref.name, unrecorded
            )


def build_registry(handlers: TenantHandlers) -> kopf.OperatorRegistry:
    """A kopf registry holding the Tenant operator's handlers and nothing else."""
    registry = kopf.OperatorRegistry()
    tenants = (GROUP, VERSION, PLURAL)

    @kopf.on.resume(*tenants, id="ensure-on-resume", registry=registry)
    @kopf.on.create(*tenants, id="ensure-on-create", registry=registry)
    @kopf.on.update(*tenants, id="ensure-on-update", registry=registry)
    async def ensure(body: kopf.Body, retry: int, **_: Any) -> None:
        await handlers.ensure(body, retry)

    interval = handlers.config.resync_interval
    if interval is not None:

        @kopf.timer(
            *tenants, id="resync", interval=interval, initial_delay=interval, registry=registry
        )
        async def resync(body: kopf.Body, **_: Any) -> None:
            await handlers.resync(body)

    @kopf.on.delete(*tenants, id="release", registry=registry)
    async def release(body: kopf.Body, retry: int, **_: Any) -> None:
        await handlers.release(body, retry)

    for group, version, plural in CHILD_RESOURCES:
        _watch_child(registry, handlers, group, version, plural)
    return registry


def _watch_child(
    registry: kopf.OperatorRegistry,
    handlers: TenantHandlers,
    group: str,
    version: str,
    plural: str,
) -> None:
    def concerning(type: str | None, **_: Any) -> bool:
        return handlers.concerns(type, plural)

    @kopf.on.event(
        group,
        version,
        plural,
        id=f"watch-{plural}",
        labels=OWNED,
        when=concerning,
        registry=registry,
    )
    async def child_event(
        type: str | None, namespace: str | None, labels: kopf.Labels, **_: Any
    ) -> None:
        await handlers.child_event(type, plural, namespace, labels)
