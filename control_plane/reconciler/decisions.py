"""Pure reconcile decisions: from a tenant's snapshot to what the runtime must do."""

from __future__ import annotations

from enum import StrEnum

from control_plane.tenants.lifecycle import TenantSnapshot
from control_plane.tenants.states import TenantState


class Action(StrEnum):
    RUN = "run"
    STOP = "stop"
    REMOVE = "remove"
    NONE = "none"


def decide(tenant: TenantSnapshot) -> Action:
    """What the runtime must do for ``tenant`` now."""
    if tenant.state == TenantState.DELETED:
        return Action.NONE
    if tenant.delete_requested:
        return Action.REMOVE
    if tenant.suspended:
        return Action.STOP
    return Action.RUN


def announces_start(tenant: TenantSnapshot) -> bool:
    """Whether starting the gateway is a visible move back to ``provisioning``.

    A suspended, hibernated or failed tenant shows ``provisioning`` while its gateway
    starts; a running one stays ``running`` while the runtime checks or adopts its gateway.
    """
    return tenant.state in (TenantState.SUSPENDED, TenantState.HIBERNATED, TenantState.FAILED)


def retry_delay(failures: int, *, base: float = 2.0, cap: float = 300.0) -> float:
    """Backoff before retrying a tenant whose reconcile failed ``failures`` times in a row."""
    return float(min(cap, base * 2 ** max(0, failures - 1)))
