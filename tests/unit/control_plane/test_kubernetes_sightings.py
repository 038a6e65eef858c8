"""What a change to a running tenant's Tenant means for its gateway, as data."""

from __future__ import annotations

from typing import Any

import pytest

from control_plane.runtime.kubernetes import resources
from control_plane.runtime.kubernetes.sightings import GatewayEvent, gateway_event


def tenant(phase: str, message: str | None = None, **status: Any) -> dict[str, Any]:
    return {"status": {"phase": phase, **({"message": message} if message else {}), **status}}


@pytest.mark.parametrize(
    ("before", "now", "event"),
    [
        ("Running", tenant("Running", "ready"), None),
        (
            "Running",
            tenant("Provisioning", "the gateway stopped being ready"),
            ("gateway.crashed", "the gateway stopped being ready", {"phase": "Provisioning"}),
        ),
        ("Running", tenant("Suspended"), ("gateway.crashed", "Suspended", {"phase": "Suspended"})),
        (
            "Running",
            tenant("Failed", "quota exceeded"),
            ("gateway.crash_looping", "quota exceeded", {"phase": "Failed"}),
        ),
        (
            "Provisioning",
            tenant("Failed", "the rollout exceeded its progress deadline"),
            (
                "gateway.crash_looping",
                "the rollout exceeded its progress deadline",
                {"phase": "Failed"},
            ),
        ),
        ("Failed", tenant("Failed", "still"), None),
        (
            "Running",
            None,
            ("gateway.crash_looping", "the Tenant resource was deleted", {"phase": "Deleted"}),
        ),
        ("Deleted", None, None),
        (
            "Provisioning",
            tenant("Running", endpoint="http://t.ns.svc:80"),
            ("gateway.restarted", "gateway ready again", {"endpoint": "http://t.ns.svc:80"}),
        ),
        ("Deleted", tenant("Pending"), None),
        ("Provisioning", tenant("Pending"), None),
    ],
)
def test_a_running_tenants_phase_changes_become_gateway_events(
    before: str, now: dict[str, Any] | None, event: GatewayEvent | None
) -> None:
    assert gateway_event(before, now) == event


def test_a_tenant_namespace_says_whose_it_is_and_runs_restricted() -> None:
    namespace = resources.tenant_namespace(
        name="tenants-acme", installation="prod", tenant_id="t-1", slug="acme"
    )
    assert namespace == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "tenants-acme",
            "labels": {
                "tenantry.dev/installation": "prod",
                "tenantry.dev/tenant-id": "t-1",
                "tenantry.dev/slug": "acme",
                "app.kubernetes.io/managed-by": "tenantry",
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }
