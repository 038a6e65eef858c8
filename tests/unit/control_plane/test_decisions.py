"""Reconciler decisions: what the runtime must do for a tenant, from its snapshot alone."""

import itertools

import pytest

from control_plane.reconciler.decisions import Action, announces_start, decide, retry_delay
from control_plane.tenants.lifecycle import TenantSnapshot
from control_plane.tenants.states import TenantState

S = TenantState


def snapshot(
    state: TenantState, *, suspended: bool = False, delete: bool = False
) -> TenantSnapshot:
    return TenantSnapshot(
        id="01a2020b-515b-7320-8dc1-dfdf746b71bf",
        slug="acme",
        plan="pro",
        state=state,
        endpoint=None,
        generation=2,
        observed_generation=1,
        suspended=suspended,
        delete_requested=delete,
        keys=(),
    )


@pytest.mark.parametrize(
    ("tenant", "action"),
    [
        (snapshot(S.PROVISIONING), Action.RUN),
        (snapshot(S.RUNNING), Action.RUN),
        (snapshot(S.FAILED), Action.RUN),
        (snapshot(S.SUSPENDED), Action.RUN),  # resumed: suspended flag cleared
        (snapshot(S.RUNNING, suspended=True), Action.STOP),
        (snapshot(S.PROVISIONING, suspended=True), Action.STOP),
        (snapshot(S.DELETING, delete=True), Action.REMOVE),
        (snapshot(S.DELETING, suspended=True, delete=True), Action.REMOVE),
        (snapshot(S.DELETED, delete=True), Action.NONE),
    ],
)
def test_decide(tenant: TenantSnapshot, action: Action) -> None:
    assert decide(tenant) is action


def test_restarting_from_a_stopped_state_is_announced() -> None:
    assert announces_start(snapshot(S.SUSPENDED))
    assert announces_start(snapshot(S.FAILED))
    assert announces_start(snapshot(S.HIBERNATED))
    assert not announces_start(snapshot(S.RUNNING))
    assert not announces_start(snapshot(S.PROVISIONING))


def test_retry_backoff_doubles_up_to_a_cap() -> None:
    delays = [retry_delay(n) for n in range(1, 12)]
    assert delays[:4] == [2.0, 4.0, 8.0, 16.0]
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert delays[-1] == 300.0
