"""What the watch has seen of each Tenant, and what a change means for the tenant's gateway.

The event loop's side of :mod:`.watch`. The runtime records every Tenant the watch delivers
in :class:`TenantSightings`; whoever waits for a Tenant (a start for ``Running``, a removal
for the deletion) reads it once from the API, then waits here for the next sighting, so
nothing polls. :func:`gateway_event` turns a change to the Tenant of a running tenant into
the event the local runtime would report for its child process:

=========================================  ==============================================
the Tenant of a running gateway ...         event (what the reconciler does with it)
=========================================  ==============================================
stops being ``Running`` (pod not ready)     ``gateway.crashed`` (noted)
turns ``Failed``, or is deleted             ``gateway.crash_looping`` (tenant ``failed``,
                                            retried with backoff, which applies it again)
is ``Running`` again                        ``gateway.restarted`` (noted, reconciled)
=========================================  ==============================================
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from control_plane.runtime.kubernetes import resources

GatewayEvent = tuple[str, str, dict[str, Any]]
"""``(event_type, message, data)``, as a :data:`~control_plane.runtime.base.GatewayListener`
takes them."""

DELETED = "Deleted"
"""The phase of a Tenant that no longer exists."""


@dataclass(frozen=True)
class Sighting:
    number: int
    """Sightings of all Tenants are numbered in the order seen."""
    tenant: dict[str, Any] | None
    """The Tenant as seen, None once deleted."""


class TenantSightings:
    """The last sighting of each Tenant, and a way to wait for the next one."""

    def __init__(self) -> None:
        self._last: dict[str, Sighting] = {}
        self._count = 0
        self._changed = asyncio.Condition()

    def number(self, tenant_id: str) -> int:
        """The number of the Tenant's last sighting, 0 if never seen."""
        last = self._last.get(tenant_id)
        return 0 if last is None else last.number

    def present(self) -> set[str]:
        """Tenants whose last sighting shows them existing."""
        return {tenant_id for tenant_id, s in self._last.items() if s.tenant is not None}

    async def record(self, tenant_id: str, tenant: dict[str, Any] | None) -> None:
        self._count += 1
        self._last[tenant_id] = Sighting(self._count, tenant)
        async with self._changed:
            self._changed.notify_all()

    async def next(self, tenant_id: str, after: int, deadline: float) -> Sighting | None:
        """The Tenant's first sighting numbered above ``after``; None once ``deadline``
        (event-loop time) has passed without one."""
        try:
            async with asyncio.timeout_at(deadline), self._changed:
                await self._changed.wait_for(lambda: self.number(tenant_id) > after)
        except TimeoutError:
            return None
        return self._last[tenant_id]

    def forget(self, tenant_id: str) -> None:
        self._last.pop(tenant_id, None)


def tenant_id_of(tenant: dict[str, Any]) -> str | None:
    labels = (tenant.get("metadata") or {}).get("labels") or {}
    found = labels.get(resources.LABEL_TENANT_ID)
    return str(found) if found else None


def phase_of(tenant: dict[str, Any] | None) -> str:
    if tenant is None:
        return DELETED
    return str((tenant.get("status") or {}).get("phase") or "")


def gateway_event(before: str, tenant: dict[str, Any] | None) -> GatewayEvent | None:
    """The event, if any, of a running tenant's Tenant moving on from phase ``before``."""
    phase = phase_of(tenant)
    if phase == before:
        return None
    if tenant is None:
        return ("gateway.crash_looping", "the Tenant resource was deleted", {"phase": phase})
    status = tenant.get("status") or {}
    message = str(status.get("message") or phase or "no status")
    if phase == "Failed":
        return ("gateway.crash_looping", message, {"phase": phase})
    if phase == "Running":
        return ("gateway.restarted", "gateway ready again", {"endpoint": status.get("endpoint")})
    if before == "Running":
        return ("gateway.crashed", message, {"phase": phase})
    return None


def describes_spec(tenant: dict[str, Any]) -> bool:
    """Whether the status describes the current spec (where the server keeps generations)."""
    generation = (tenant.get("metadata") or {}).get("generation")
    observed = (tenant.get("status") or {}).get("observedGeneration")
    return generation is None or observed is None or observed >= generation
