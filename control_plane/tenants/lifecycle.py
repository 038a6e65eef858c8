"""What the reconciler reads about tenants and how it records what it observed.

Every observation names the ``generation`` it acted on; an observation for a generation
that has since changed is dropped, so a slow reconcile can never overwrite newer intent.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import func, or_, select

from control_plane.db.engine import Database
from control_plane.db.models import TenantRow
from control_plane.db.values import utcnow
from control_plane.tenants.events import EventSignal, append_event
from control_plane.tenants.keys import active_digests
from control_plane.tenants.model_routes import routes_of
from control_plane.tenants.states import TenantState, check_transition
from tenant_gateway.contract import GatewayKeyDigest

_KEEP: Any = object()


class TenantSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The desired and last observed state of one tenant, as the reconciler needs it."""

    id: str
    slug: str
    plan: str
    state: TenantState
    endpoint: str | None
    generation: int
    observed_generation: int
    suspended: bool
    delete_requested: bool
    keys: tuple[GatewayKeyDigest, ...]
    model_aliases: dict[str, str] = msgspec.field(default_factory=dict)
    model_fallbacks: dict[str, list[str]] = msgspec.field(default_factory=dict)


class TenantLifecycle:
    def __init__(self, db: Database, signal: EventSignal) -> None:
        self.db = db
        self.signal = signal

    async def snapshot(self, tenant_id: str) -> TenantSnapshot | None:
        async with self.db.transaction(tenant=tenant_id) as session:
            row = await session.get(TenantRow, tenant_id)
            if row is None:
                return None
            digests = await active_digests(session, tenant_id)
            routes = routes_of(row.model_routes)
            return TenantSnapshot(
                id=row.id,
                slug=row.slug,
                plan=row.plan,
                state=TenantState(row.state),
                endpoint=row.endpoint,
                generation=row.generation,
                observed_generation=row.observed_generation,
                suspended=row.suspended,
                delete_requested=row.delete_requested,
                keys=tuple(digests),
                model_aliases=routes.aliases,
                model_fallbacks=routes.fallbacks,
            )

    async def live_ids(self) -> list[str]:
        """Every tenant that is not deleted: what the runtime should account for."""
        async with self.db.transaction(platform="reconcile: live tenants") as session:
            rows = await session.scalars(
                select(TenantRow.id).where(TenantRow.state != TenantState.DELETED)
            )
            return list(rows)

    async def unsettled_ids(self) -> list[str]:
        """Tenants whose desired state is not yet observed, or that are failed or moving."""
        async with self.db.transaction(platform="reconcile: unsettled tenants") as session:
            rows = await session.scalars(
                select(TenantRow.id).where(
                    TenantRow.state != TenantState.DELETED,
                    or_(
                        TenantRow.generation != TenantRow.observed_generation,
                        TenantRow.state.in_(
                            [TenantState.PROVISIONING, TenantState.DELETING, TenantState.FAILED]
                        ),
                    ),
                )
            )
            return list(rows)

    async def counts_by_state(self) -> dict[str, int]:
        async with self.db.transaction(platform="metrics: tenants by state") as session:
            rows = await session.execute(
                select(TenantRow.state, func.count()).group_by(TenantRow.state)
            )
            return {str(state): int(count) for state, count in rows}

    async def record(
        self,
        tenant_id: str,
        generation: int,
        *,
        state: TenantState,
        event_type: str,
        message: str,
        endpoint: str | None = _KEEP,
        reason: str | None = None,
        observed: bool = True,
        **data: Any,
    ) -> bool:
        """Record an observation of ``generation``; False when the tenant moved on meanwhile."""
        async with self.db.transaction(tenant=tenant_id) as session:
            row = await session.get(TenantRow, tenant_id, with_for_update={"key_share": True})
            if row is None or row.generation != generation:
                return False
            current = TenantState(row.state)
            check_transition(current, state)
            changed = (
                current != state
                or row.reason != reason
                or (endpoint is not _KEEP and row.endpoint != endpoint)
                or (observed and row.observed_generation != generation)
            )
            if not changed:
                return True
            row.state = state
            row.reason = reason
            if endpoint is not _KEEP:
                row.endpoint = endpoint
            if observed:
                row.observed_generation = generation
            row.updated_at = utcnow()
            append_event(session, tenant_id, event_type, message, state=str(state), **data)
        self.signal.publish()
        return True

    async def note(self, tenant_id: str, event_type: str, message: str, **data: Any) -> None:
        """Append an event without changing state (progress the user should see)."""
        async with self.db.transaction(tenant=tenant_id) as session:
            if await session.get(TenantRow, tenant_id) is None:
                return
            append_event(session, tenant_id, event_type, message, **data)
        self.signal.publish()
