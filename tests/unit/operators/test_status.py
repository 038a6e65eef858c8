"""A Tenant's phase and conditions, worked out from the spec and the gateway Deployment."""

from __future__ import annotations

from typing import Any

import pytest

from operators.tenant import status
from operators.tenant.spec import TenantSpec, TenantStatus, parse_spec

BEFORE = "2026-01-01T00:00:00Z"
NOW = "2026-01-01T00:05:00Z"


def make_spec(**fields: Any) -> TenantSpec:
    return parse_spec(
        {"tenantId": "t", "slug": "acme", "image": "i:1", "bundleSecretName": "b", **fields}
    )


def deployment(generation: int = 1, **state: Any) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "status": state}


def verdict_of(
    spec: TenantSpec, found: dict[str, Any] | None, previous: TenantStatus | None = None
) -> status.Verdict:
    return status.judge(spec, status.rollout_of(found), previous or TenantStatus())


@pytest.mark.parametrize(
    ("found", "phase", "ready", "progressing", "degraded"),
    [
        (None, "Pending", "NotBuilt", "Building", "NotBuilt"),
        (deployment(), "Provisioning", "GatewayNotReady", "RollingOut", "Starting"),
        (
            deployment(replicas=1, readyReplicas=1, observedGeneration=1),
            "Running",
            "GatewayReady",
            "RolloutComplete",
            "GatewayReady",
        ),
        (
            # ready, but the controller has not seen the newest Deployment spec yet
            deployment(generation=2, replicas=1, readyReplicas=1, observedGeneration=1),
            "Provisioning",
            "GatewayNotReady",
            "RollingOut",
            "Starting",
        ),
        (
            deployment(
                conditions=[
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": 'ReplicaSet "x" has timed out progressing.',
                    }
                ]
            ),
            "Failed",
            "ProgressDeadlineExceeded",
            "ProgressDeadlineExceeded",
            "ProgressDeadlineExceeded",
        ),
    ],
)
def test_the_phase_follows_the_gateway_deployment(
    found: dict[str, Any] | None, phase: str, ready: str, progressing: str, degraded: str
) -> None:
    verdict = verdict_of(make_spec(), found)
    assert verdict.phase == phase
    assert (verdict.ready[1], verdict.progressing[1], verdict.degraded[1]) == (
        ready,
        progressing,
        degraded,
    )
    assert verdict.ready[0] == ("True" if phase == "Running" else "False")


def test_a_pod_that_stops_being_ready_degrades_the_tenant() -> None:
    verdict = verdict_of(make_spec(), deployment(replicas=1), TenantStatus(phase="Running"))
    assert verdict.phase == "Provisioning"
    assert verdict.degraded == ("True", "GatewayNotReady")
    assert verdict.message == "the gateway stopped being ready"


@pytest.mark.parametrize("fields", [{"suspended": True}, {"replicas": 0}])
def test_a_suspended_tenant_is_suspended_while_and_after_its_pod_stops(
    fields: dict[str, Any],
) -> None:
    stopping = verdict_of(make_spec(**fields), deployment(replicas=1, readyReplicas=1))
    assert stopping.phase == "Suspended"
    assert stopping.progressing == ("True", "ScalingDown")
    stopped = verdict_of(make_spec(**fields), deployment(replicas=0))
    assert stopped.phase == "Suspended"
    assert stopped.ready == ("False", "Suspended")
    assert stopped.progressing == ("False", "Suspended")


def test_a_condition_keeps_its_transition_time_until_its_status_changes() -> None:
    first = status.render(
        status.failure("Forbidden", "nope"),
        previous=TenantStatus(),
        endpoint=None,
        observed_generation=1,
        now=BEFORE,
    )
    assert {c.last_transition_time for c in first.conditions} == {BEFORE}

    again = status.render(
        status.failure("Invalid", "still nope"),
        previous=first,
        endpoint=None,
        observed_generation=1,
        now=NOW,
    )
    assert {c.last_transition_time for c in again.conditions} == {BEFORE}
    assert again.condition("Degraded") is not None

    recovered = status.render(
        verdict_of(make_spec(), deployment(replicas=1, readyReplicas=1)),
        previous=again,
        endpoint="http://x",
        observed_generation=2,
        now=NOW,
    )
    times = {c.type: c.last_transition_time for c in recovered.conditions}
    assert times == {"Ready": NOW, "Progressing": BEFORE, "Degraded": NOW}


def test_the_same_status_is_no_news() -> None:
    verdict = verdict_of(make_spec(), deployment())
    first = status.render(
        verdict, previous=TenantStatus(), endpoint="http://x", observed_generation=1, now=BEFORE
    )
    second = status.render(
        verdict, previous=first, endpoint="http://x", observed_generation=1, now=NOW
    )
    assert status.unchanged(first, second)


def test_the_patch_clears_what_the_status_no_longer_says() -> None:
    patch = status.as_patch(TenantStatus())
    assert patch == {
        "status": {
            "phase": "Pending",
            "conditions": [],
            "endpoint": None,
            "message": None,
            "observedGeneration": None,
        }
    }
