"""The tenant state machine, as data: which state may follow which."""

from __future__ import annotations

from enum import StrEnum

from control_plane.errors import InvalidTransition


class TenantState(StrEnum):
    PROVISIONING = "provisioning"
    RUNNING = "running"
    SUSPENDED = "suspended"
    HIBERNATED = "hibernated"
    FAILED = "failed"
    DELETING = "deleting"
    DELETED = "deleted"


S = TenantState

TRANSITIONS: dict[TenantState, frozenset[TenantState]] = {
    S.PROVISIONING: frozenset({S.RUNNING, S.FAILED, S.SUSPENDED, S.DELETING}),
    S.RUNNING: frozenset({S.SUSPENDED, S.HIBERNATED, S.FAILED, S.DELETING, S.PROVISIONING}),
    S.SUSPENDED: frozenset({S.PROVISIONING, S.RUNNING, S.DELETING, S.FAILED}),
    S.HIBERNATED: frozenset({S.PROVISIONING, S.RUNNING, S.SUSPENDED, S.DELETING, S.FAILED}),
    S.FAILED: frozenset({S.PROVISIONING, S.RUNNING, S.SUSPENDED, S.DELETING}),
    S.DELETING: frozenset({S.DELETED}),
    S.DELETED: frozenset(),
}

TERMINAL = frozenset({S.DELETED})


def can_transition(current: TenantState, target: TenantState) -> bool:
    return current == target or target in TRANSITIONS[current]


def check_transition(current: TenantState, target: TenantState) -> None:
    """Raise :class:`InvalidTransition` unless ``current → target`` is allowed."""
    if not can_transition(current, target):
        raise InvalidTransition(f"a {current} tenant cannot become {target}")
