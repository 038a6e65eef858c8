"""The tenant state machine: what DESIGN.md allows, and nothing else."""

import pytest

from control_plane.errors import InvalidTransition
from control_plane.tenants.states import TRANSITIONS, TenantState, can_transition, check_transition

S = TenantState

ALLOWED = [
    (S.PROVISIONING, S.RUNNING),
    (S.PROVISIONING, S.FAILED),
    (S.RUNNING, S.SUSPENDED),
    (S.SUSPENDED, S.RUNNING),
    (S.SUSPENDED, S.PROVISIONING),
    (S.RUNNING, S.HIBERNATED),
    (S.HIBERNATED, S.RUNNING),
    (S.RUNNING, S.FAILED),
    (S.FAILED, S.PROVISIONING),
    (S.FAILED, S.RUNNING),
    (S.RUNNING, S.DELETING),
    (S.FAILED, S.DELETING),
    (S.SUSPENDED, S.DELETING),
    (S.DELETING, S.DELETED),
]

REFUSED = [
    (S.DELETED, S.RUNNING),
    (S.DELETED, S.PROVISIONING),
    (S.DELETING, S.RUNNING),
    (S.DELETING, S.FAILED),
    (S.PROVISIONING, S.DELETED),
    (S.RUNNING, S.DELETED),
    (S.PROVISIONING, S.HIBERNATED),
]


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_allowed_transitions(current: TenantState, target: TenantState) -> None:
    check_transition(current, target)
    assert can_transition(current, target)


@pytest.mark.parametrize(("current", "target"), REFUSED)
def test_refused_transitions_raise(current: TenantState, target: TenantState) -> None:
    assert not can_transition(current, target)
    with pytest.raises(InvalidTransition, match=f"a {current} tenant cannot become {target}"):
        check_transition(current, target)


def test_every_state_has_rules_and_deleted_is_final() -> None:
    assert set(TRANSITIONS) == set(TenantState)
    assert TRANSITIONS[S.DELETED] == frozenset()
    # Every live state can be deleted, and deletion only ends in deleted.
    for state in set(TenantState) - {S.DELETING, S.DELETED}:
        assert S.DELETING in TRANSITIONS[state], state
    assert TRANSITIONS[S.DELETING] == frozenset({S.DELETED})


def test_staying_in_a_state_is_always_allowed() -> None:
    for state in TenantState:
        assert can_transition(state, state)
