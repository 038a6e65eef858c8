"""The rules of a Tenant's life: build its children, report its status, let go of it.

:class:`TenantReconciler` is what the kopf handlers delegate to. It parses the spec, applies
every child built by :mod:`operators.tenant.manifests` through :class:`~.apply.Cluster`, works
out the status with :mod:`operators.tenant.status` and writes it only when it changed (a write
is an event every watcher hears). Errors arrive already classified
(:mod:`operators.errors`); deciding what kopf does with them is the handlers' business.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from operators.errors import OperatorError
from operators.tenant import manifests, status
from operators.tenant.apply import Cluster
from operators.tenant.spec import (
    KIND,
    TenantSpec,
    TenantStatus,
    check_tenant_name,
    endpoint_for,
    parse_spec,
    parse_status,
)

log = logging.getLogger(__name__)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TenantRef:
    """Which Tenant, and which version of its spec, is being handled."""

    name: str
    namespace: str
    uid: str
    generation: int | None = None

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> TenantRef:
        meta = body.get("metadata") or {}
        generation = meta.get("generation")
        return cls(
            name=str(meta["name"]),
            namespace=str(meta["namespace"]),
            uid=str(meta.get("uid") or ""),
            generation=int(generation) if generation is not None else None,
        )


def is_deleting(body: Mapping[str, Any]) -> bool:
    return bool((body.get("metadata") or {}).get("deletionTimestamp"))


def retain_policy(spec_body: Mapping[str, Any]) -> str:
    """The storage retain policy, read leniently: a Tenant with a broken spec is still
    deleted, and its volume is kept unless the spec plainly says ``delete``."""
    storage = spec_body.get("storage")
    if isinstance(storage, Mapping) and storage.get("retainPolicy") == "delete":
        return "delete"
    return "retain"


class TenantReconciler:
    """Builds, reports on and lets go of Tenants.

    Status writes for one Tenant are serialized (reconciles and Deployment events race) and
    each is worked out from a fresh read of the Tenant and its Deployment, so the last write
    is always about the latest state, and ``observedGeneration`` is only ever moved by a
    reconcile that applied that generation."""

    def __init__(
        self, cluster: Cluster, *, clock: Callable[[], str] = utc_now, concurrency: int = 16
    ) -> None:
        self.cluster = cluster
        self.clock = clock
        self._reporting: dict[tuple[str, str], asyncio.Lock] = {}
        self._building = asyncio.Semaphore(concurrency)
        """How many Tenants have their children applied at once. Without a bound, a burst
        of Tenants shares the API round-robin and every one of them is done only at the
        end; with one, they are done one batch after another, at the same overall pace."""

    async def reconcile(self, ref: TenantRef, spec_body: Mapping[str, Any]) -> TenantStatus | None:
        """Build or repair every child from the spec, then report what the cluster shows."""
        check_tenant_name(ref.name)
        spec = parse_spec(spec_body)
        owner = manifests.Owner(name=ref.name, uid=ref.uid)
        async with self._building:
            for child in manifests.make_children(spec, ref.name, ref.namespace, owner):
                await self.cluster.apply(child)
        return await self._report(ref, spec, observed_generation=ref.generation)

    async def refresh(self, namespace: str, name: str) -> TenantStatus | None:
        """Report again after the gateway's Deployment changed (the pod got ready, or not).
        The observed generation is left alone: only :meth:`reconcile` applies a spec."""
        return await self._report(TenantRef(name=name, namespace=namespace, uid=""), None)

    async def restore(self, namespace: str, name: str) -> TenantStatus | None:
        """Rebuild the children of a Tenant after one of them vanished."""
        tenant = await self.cluster.get(KIND, namespace, name)
        if tenant is None or is_deleting(tenant):
            return None
        log.info("a child of Tenant %s/%s went missing; rebuilding", namespace, name)
        return await self.reconcile(TenantRef.of(tenant), tenant.get("spec") or {})

    async def record_failure(self, ref: TenantRef, error: OperatorError) -> TenantStatus | None:
        """Put a failure that retrying will not fix into the status, for people to read."""
        async with self._lock(ref):
            tenant = await self.cluster.get(KIND, ref.namespace, ref.name)
            if tenant is None:
                return None
            previous = parse_status(tenant.get("status"))
            failed = status.render(
                status.failure(error.reason, str(error)),
                previous=previous,
                endpoint=previous.endpoint,
                observed_generation=ref.generation,
                now=self.clock(),
            )
            await self._write(ref, previous, failed, with_generation=True)
            return failed

    async def release(self, ref: TenantRef, spec_body: Mapping[str, Any]) -> bool:
        """On deletion: remove the volume claim unless it is to be retained. The other
        children are owned by the Tenant and go with it. Returns whether a claim was removed."""
        self._reporting.pop((ref.namespace, ref.name), None)
        if retain_policy(spec_body) != "delete":
            log.info("Tenant %s/%s deleted; its volume is retained", ref.namespace, ref.name)
            return False
        claim = manifests.volume_claim_name(ref.name)
        return await self.cluster.delete("PersistentVolumeClaim", ref.namespace, claim)

    # -- reporting ---------------------------------------------------------------------------

    def _lock(self, ref: TenantRef) -> asyncio.Lock:
        return self._reporting.setdefault((ref.namespace, ref.name), asyncio.Lock())

    async def _report(
        self,
        ref: TenantRef,
        spec: TenantSpec | None,
        *,
        observed_generation: int | None = None,
    ) -> TenantStatus | None:
        """Write the status the Tenant's Deployment calls for. ``spec=None`` takes the spec
        from the Tenant as read here; ``observed_generation=None`` keeps the one already
        written."""
        async with self._lock(ref):
            tenant = await self.cluster.get(KIND, ref.namespace, ref.name)
            if tenant is None or is_deleting(tenant):
                return None
            previous = parse_status(tenant.get("status"))
            if observed_generation is None and _stands(previous):
                return previous  # a refusal stands until a reconcile gets past it
            if spec is None:
                try:
                    spec = parse_spec(tenant.get("spec") or {})
                except OperatorError:
                    return None  # the change handlers have reported the bad spec
            deployment = await self.cluster.get("Deployment", ref.namespace, ref.name)
            verdict = status.judge(spec, status.rollout_of(deployment), previous)
            keep = observed_generation is None
            current = status.render(
                verdict,
                previous=previous,
                endpoint=endpoint_for(ref.name, ref.namespace),
                observed_generation=previous.observed_generation if keep else observed_generation,
                now=self.clock(),
            )
            await self._write(ref, previous, current, with_generation=not keep)
            return current

    async def _write(
        self,
        ref: TenantRef,
        previous: TenantStatus,
        current: TenantStatus,
        *,
        with_generation: bool,
    ) -> None:
        if status.unchanged(previous, current):
            return
        patch = status.as_patch(current)
        if not with_generation:
            del patch["status"]["observedGeneration"]
        await self.cluster.patch_status(KIND, ref.namespace, ref.name, patch)


def _stands(previous: TenantStatus) -> bool:
    """Whether a Failed status is a refusal (kept until a reconcile), not a rollout problem
    (which the Deployment's next change may clear)."""
    return previous.phase == "Failed" and not _rollout_failure(previous)


def _rollout_failure(previous: TenantStatus) -> bool:
    degraded = previous.condition("Degraded")
    return degraded is not None and degraded.reason == "ProgressDeadlineExceeded"
