"""The reconcile loop: a work queue of tenant ids, a bounded pool of workers, a resync sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from control_plane.catalog.service import ModelCatalog
from control_plane.reconciler import metrics
from control_plane.reconciler.decisions import Action, announces_start, decide, retry_delay
from control_plane.runtime.base import GatewaySpec, Runtime, RuntimeFailure
from control_plane.tenants.lifecycle import TenantLifecycle, TenantSnapshot
from control_plane.tenants.plans import PLAN_BUDGETS, plan_budget
from control_plane.tenants.states import TenantState
from control_plane.vault.service import CredentialVault
from tenant_gateway.contract import Budget, GatewayBundle, PlatformModel, SealedCredential

log = logging.getLogger(__name__)


class TenantReconciler:
    def __init__(
        self,
        lifecycle: TenantLifecycle,
        runtime: Runtime,
        *,
        platform_models_url: str | None,
        vault: CredentialVault,
        catalog: ModelCatalog,
        provider_bases: dict[str, str] | None = None,
        plan_budgets: Mapping[str, Budget] = PLAN_BUDGETS,
        control_plane_url: str | None = None,
        channel_webhooks: bool = False,
        concurrency: int = 16,
        resync_interval: float = 5.0,
    ) -> None:
        self.lifecycle = lifecycle
        self.runtime = runtime
        self.platform_models_url = platform_models_url
        self.plan_budgets = plan_budgets
        self.provider_bases = dict(provider_bases or {})
        """Where gateways reach BYOK providers (``openai``, ``anthropic``)."""
        self.vault = vault
        self.catalog = catalog
        self.control_plane_url = control_plane_url
        self.channel_webhooks = channel_webhooks
        """The control plane has a public URL: tenants' Telegram bots take webhook calls."""
        self.concurrency = concurrency
        self.resync_interval = resync_interval
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._dirty: set[str] = set()
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.started = asyncio.Event()

    # -- control ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Account for every tenant, remove leftovers of deleted ones, then run the loop."""
        await self.runtime.start(self._on_gateway_event)
        live = await self.lifecycle.live_ids()
        reaped = await self.runtime.reap(set(live))
        if reaped:
            log.warning("removed %d gateway(s) of tenants that no longer exist", len(reaped))
        for tenant_id in live:
            self.notify(tenant_id)
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"reconcile-worker-{n}")
            for n in range(self.concurrency)
        ]
        self._tasks.append(asyncio.create_task(self._resync(), name="reconcile-resync"))
        self.started.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def notify(self, tenant_id: str) -> None:
        """Ask for a reconcile pass of ``tenant_id`` soon; cheap and idempotent."""
        if tenant_id in self._active:
            self._dirty.add(tenant_id)
        elif tenant_id not in self._queued:
            self._queued.add(tenant_id)
            self._queue.put_nowait(tenant_id)

    async def notify_every_tenant(self) -> None:
        """Ask for a pass of every tenant: something all their bundles hold (the model
        catalog) changed. Tenants with nothing to do settle without an event."""
        for tenant_id in await self.lifecycle.live_ids():
            self.notify(tenant_id)

    # -- loop ------------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            tenant_id = await self._queue.get()
            self._queued.discard(tenant_id)
            self._active.add(tenant_id)
            try:
                await self.reconcile(tenant_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile of tenant %s failed unexpectedly", tenant_id)
                self._schedule_retry(tenant_id)
            finally:
                self._active.discard(tenant_id)
            if tenant_id in self._dirty:
                self._dirty.discard(tenant_id)
                self.notify(tenant_id)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_interval)
            try:
                now = time.monotonic()
                for tenant_id in await self.lifecycle.unsettled_ids():
                    if self._retry_at.get(tenant_id, 0.0) <= now:
                        self.notify(tenant_id)
                counts = await self.lifecycle.counts_by_state()
                for state in TenantState:
                    metrics.TENANTS.labels(state=str(state)).set(counts.get(str(state), 0))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile resync failed")

    def _schedule_retry(self, tenant_id: str) -> float:
        failures = self._failures.get(tenant_id, 0) + 1
        self._failures[tenant_id] = failures
        delay = retry_delay(failures)
        self._retry_at[tenant_id] = time.monotonic() + delay
        return delay

    def _settled(self, tenant_id: str) -> None:
        self._failures.pop(tenant_id, None)
        self._retry_at.pop(tenant_id, None)

    # -- one pass --------------------------------------------------------------------------

    async def reconcile(self, tenant_id: str) -> None:
        tenant = await self.lifecycle.snapshot(tenant_id)
        if tenant is None:
            return
        action = decide(tenant)
        if action is Action.NONE:
            return
        try:
            if action is Action.REMOVE:
                await self._remove(tenant)
            elif action is Action.STOP:
                await self._suspend(tenant)
            else:
                await self._run(tenant)
        except RuntimeFailure as exc:
            metrics.RECONCILES.labels(action=str(action), result="failed").inc()
            delay = self._schedule_retry(tenant_id)
            if action is Action.REMOVE:
                await self.lifecycle.note(
                    tenant_id, "tenant.delete_failed", f"{exc.reason}; retrying in {delay:g}s"
                )
            else:
                await self.lifecycle.record(
                    tenant_id,
                    tenant.generation,
                    state=TenantState.FAILED,
                    reason=exc.reason,
                    observed=False,
                    event_type="tenant.failed",
                    message=f"{exc.reason}; retrying in {delay:g}s",
                )
            return
        metrics.RECONCILES.labels(action=str(action), result="ok").inc()
        self._settled(tenant_id)

    async def _run(self, tenant: TenantSnapshot) -> None:
        if announces_start(tenant):
            await self.lifecycle.record(
                tenant.id,
                tenant.generation,
                state=TenantState.PROVISIONING,
                observed=False,
                event_type="tenant.provisioning",
                message="starting gateway",
            )
        elif tenant.state == TenantState.PROVISIONING:
            await self.lifecycle.note(tenant.id, "gateway.starting", "starting gateway")
        started = time.perf_counter()
        credentials = await self.vault.sealed_credentials(tenant.id)
        identity = await self.vault.gateway_identity(tenant.id)
        models = await self.catalog.for_gateway(tenant.plan)
        status = await self.runtime.ensure_running(
            self._spec(tenant, credentials, identity, models)
        )
        if not status.adopted and tenant.state != TenantState.RUNNING:
            metrics.PROVISION_SECONDS.observe(time.perf_counter() - started)
        if status.adopted:
            await self.lifecycle.note(
                tenant.id, "gateway.adopted", f"adopted the gateway running at {status.endpoint}"
            )
        how = "adopted running gateway" if status.adopted else "gateway ready"
        await self.lifecycle.record(
            tenant.id,
            tenant.generation,
            state=TenantState.RUNNING,
            endpoint=status.endpoint,
            event_type="tenant.running",
            message=f"{how} at {status.endpoint}",
            endpoint_url=status.endpoint,
        )

    async def _suspend(self, tenant: TenantSnapshot) -> None:
        await self.runtime.stop(tenant.id)
        await self.lifecycle.record(
            tenant.id,
            tenant.generation,
            state=TenantState.SUSPENDED,
            endpoint=None,
            event_type="tenant.suspended",
            message="gateway stopped; data kept",
        )

    async def _remove(self, tenant: TenantSnapshot) -> None:
        await self.runtime.remove(tenant.id)
        await self.lifecycle.record(
            tenant.id,
            tenant.generation,
            state=TenantState.DELETED,
            endpoint=None,
            event_type="tenant.deleted",
            message="gateway stopped and removed",
        )

    def _spec(
        self,
        tenant: TenantSnapshot,
        credentials: list[SealedCredential],
        identity_token: str | None,
        platform_models: list[PlatformModel] | None,
    ) -> GatewaySpec:
        return GatewaySpec(
            tenant_id=tenant.id,
            slug=tenant.slug,
            plan=tenant.plan,
            identity_token=identity_token,
            bundle=GatewayBundle(
                tenant_id=tenant.id,
                tenant_slug=tenant.slug,
                keys=list(tenant.keys),
                key_digest_key=self.vault.digests.gateway_key_secret_b64(tenant.id),
                platform_models_url=self.platform_models_url,
                credentials=credentials,
                control_plane_url=self.control_plane_url,
                platform_models=platform_models or [],
                platform_catalog=platform_models is not None,
                provider_bases=self.provider_bases,
                budget=plan_budget(tenant.plan, self.plan_budgets),
                model_aliases=tenant.model_aliases,
                model_fallbacks=tenant.model_fallbacks,
                inbound_key_digest=self.vault.digests.inbound_key_digest(tenant.id),
                channel_webhooks=self.channel_webhooks,
            ),
        )

    # -- what gateways do on their own -----------------------------------------------------

    async def _on_gateway_event(
        self, tenant_id: str, event_type: str, message: str, data: dict[str, Any]
    ) -> None:
        metrics.GATEWAY_EVENTS.labels(type=event_type).inc()
        if event_type == "gateway.crash_looping":
            tenant = await self.lifecycle.snapshot(tenant_id)
            if tenant is None or decide(tenant) is not Action.RUN:
                return
            delay = self._schedule_retry(tenant_id)
            await self.lifecycle.record(
                tenant_id,
                tenant.generation,
                state=TenantState.FAILED,
                reason=message,
                observed=False,
                event_type="tenant.failed",
                message=f"{message}; retrying in {delay:g}s",
                **data,
            )
            return
        await self.lifecycle.note(tenant_id, event_type, message, **data)
        if event_type == "gateway.restarted":
            self.notify(tenant_id)  # records the endpoint if the port changed
