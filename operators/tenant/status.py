"""A Tenant's status, worked out from what the cluster shows: pure functions, no API calls.

The phase and the three conditions come from the gateway Deployment (the kubelet's view of the
pod, through ``readyReplicas``) or from a failure the operator could not get past:

============  ===========================================================================
Pending       accepted, nothing built yet
Provisioning  children built, the pod is not ready (starting, or it stopped being ready)
Running       the pod is ready; the endpoint answers
Suspended     the spec asks for no pod
Failed        the operator was refused for good, or the rollout missed its deadline
============  ===========================================================================

``Ready``, ``Progressing`` and ``Degraded`` follow the Kubernetes conventions; a condition
keeps its ``lastTransitionTime`` until its status changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from operators.tenant.spec import (
    Condition,
    ConditionStatus,
    ConditionType,
    Phase,
    TenantSpec,
    TenantStatus,
)


@dataclass(frozen=True)
class Verdict:
    """What the status says, before times and generations are attached."""

    phase: Phase
    message: str
    ready: tuple[ConditionStatus, str]
    progressing: tuple[ConditionStatus, str]
    degraded: tuple[ConditionStatus, str]


@dataclass(frozen=True)
class Rollout:
    """The parts of a Deployment's status that matter here."""

    exists: bool
    ready_replicas: int = 0
    replicas: int = 0
    stale: bool = False
    """The Deployment controller has not yet seen the latest Deployment spec."""
    deadline_exceeded: str | None = None
    """The message of a ``Progressing=False/ProgressDeadlineExceeded`` condition."""


def rollout_of(deployment: Mapping[str, Any] | None) -> Rollout:
    if deployment is None:
        return Rollout(exists=False)
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    deadline = next(
        (
            str(c.get("message") or "the rollout exceeded its progress deadline")
            for c in status.get("conditions") or []
            if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
        ),
        None,
    )
    return Rollout(
        exists=True,
        ready_replicas=int(status.get("readyReplicas") or 0),
        replicas=int(status.get("replicas") or 0),
        stale=generation is not None and observed is not None and observed < generation,
        deadline_exceeded=deadline,
    )


def judge(spec: TenantSpec, rollout: Rollout, previous: TenantStatus) -> Verdict:
    """The phase and conditions the spec and the rollout call for."""
    if spec.desired_replicas == 0:
        stopping = rollout.replicas > 0
        return Verdict(
            phase="Suspended",
            message="the gateway is stopped" + (" (stopping)" if stopping else ""),
            ready=("False", "Suspended"),
            progressing=("True", "ScalingDown") if stopping else ("False", "Suspended"),
            degraded=("False", "Suspended"),
        )
    if not rollout.exists:
        return Verdict(
            phase="Pending",
            message="the gateway is not built yet",
            ready=("False", "NotBuilt"),
            progressing=("True", "Building"),
            degraded=("False", "NotBuilt"),
        )
    if rollout.ready_replicas >= 1 and not rollout.stale:
        return Verdict(
            phase="Running",
            message="the gateway is ready",
            ready=("True", "GatewayReady"),
            progressing=("False", "RolloutComplete"),
            degraded=("False", "GatewayReady"),
        )
    if rollout.deadline_exceeded is not None:
        return Verdict(
            phase="Failed",
            message=rollout.deadline_exceeded,
            ready=("False", "ProgressDeadlineExceeded"),
            progressing=("False", "ProgressDeadlineExceeded"),
            degraded=("True", "ProgressDeadlineExceeded"),
        )
    was_up = previous.phase == "Running" or _is(previous, "Degraded", "True")
    return Verdict(
        phase="Provisioning",
        message="the gateway stopped being ready" if was_up else "the gateway is starting",
        ready=("False", "GatewayNotReady"),
        progressing=("True", "RollingOut"),
        degraded=("True", "GatewayNotReady") if was_up else ("False", "Starting"),
    )


def failure(reason: str, message: str) -> Verdict:
    """The verdict for an error the operator cannot retry its way out of."""
    return Verdict(
        phase="Failed",
        message=message,
        ready=("False", reason),
        progressing=("False", reason),
        degraded=("True", reason),
    )


def _is(status: TenantStatus, type_: ConditionType, value: ConditionStatus) -> bool:
    found = status.condition(type_)
    return found is not None and found.status == value


def _condition(
    type_: ConditionType,
    value: tuple[ConditionStatus, str],
    message: str,
    previous: TenantStatus,
    now: str,
) -> Condition:
    status, reason = value
    before = previous.condition(type_)
    since = before.last_transition_time if before and before.status == status else now
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since or now,
    )


def render(
    verdict: Verdict,
    *,
    previous: TenantStatus,
    endpoint: str | None,
    observed_generation: int | None,
    now: str,
) -> TenantStatus:
    """The status to write: the verdict with transition times carried over from before."""
    return TenantStatus(
        phase=verdict.phase,
        endpoint=endpoint,
        message=verdict.message,
        observed_generation=observed_generation,
        conditions=[
            _condition("Ready", verdict.ready, verdict.message, previous, now),
            _condition("Progressing", verdict.progressing, verdict.message, previous, now),
            _condition("Degraded", verdict.degraded, verdict.message, previous, now),
        ],
    )


def as_patch(status: TenantStatus) -> dict[str, Any]:
    """The status as a JSON merge patch body; absent fields are cleared, not left behind."""
    body: dict[str, Any] = msgspec.to_builtins(status)
    body["phase"] = status.phase  # a default, so left out above, but it must overwrite
    body.setdefault("conditions", [])
    for key in ("endpoint", "message", "observedGeneration"):
        body.setdefault(key, None)
    return {"status": body}


def unchanged(before: TenantStatus, after: TenantStatus) -> bool:
    """Whether writing ``after`` would tell anyone anything new."""
    return before == after
