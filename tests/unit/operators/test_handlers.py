"""Which events of a Tenant's children the operator acts on."""

from __future__ import annotations

import pytest

from operators.tenant.handlers import CHILD_RESOURCES, TenantHandlers

PLURALS = [plural for _, _, plural in CHILD_RESOURCES]


@pytest.mark.parametrize("plural", PLURALS)
def test_a_vanished_child_of_any_kind_calls_for_a_rebuild(plural: str) -> None:
    assert TenantHandlers.concerns("DELETED", plural)


@pytest.mark.parametrize("plural", PLURALS)
@pytest.mark.parametrize("event_type", ["ADDED", None])
def test_a_child_that_appears_calls_for_nothing(plural: str, event_type: str | None) -> None:
    assert not TenantHandlers.concerns(event_type, plural)


@pytest.mark.parametrize("plural", PLURALS)
def test_only_a_change_of_the_deployment_calls_for_a_report(plural: str) -> None:
    assert TenantHandlers.concerns("MODIFIED", plural) is (plural == "deployments")
