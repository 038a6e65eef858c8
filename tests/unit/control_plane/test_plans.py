"""Plans' budgets and the TENANTRY_PLAN_BUDGETS changes to them."""

from __future__ import annotations

from typing import Any

import pytest

from control_plane.errors import SettingsError
from control_plane.settings import load_settings
from control_plane.tenants.plans import PLAN_BUDGETS, plan_budget, plan_budgets
from control_plane.tenants.schemas import PLANS


def test_every_plan_has_a_budget_and_an_unknown_plan_gets_the_smallest() -> None:
    assert set(PLAN_BUDGETS) == set(PLANS)
    assert plan_budget("no-such-plan") == PLAN_BUDGETS["free"]


def test_changes_apply_field_by_field_and_null_lifts_a_limit(tmp_path: Any) -> None:
    settings = load_settings(
        {"TENANTRY_PLAN_BUDGETS": '{"free": {"monthly_tokens": 5000, "tokens_per_minute": null}}'},
        data_dir=str(tmp_path),
    )
    budgets = plan_budgets(settings.plan_budgets)
    assert budgets["free"].monthly_tokens == 5000
    assert budgets["free"].tokens_per_minute is None
    assert budgets["free"].requests_per_minute == PLAN_BUDGETS["free"].requests_per_minute
    assert budgets["pro"] == PLAN_BUDGETS["pro"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"gold": {}}', "unknown plan 'gold'"),
        ('{"free": {"tokens": 1}}', "free.tokens: not a limit"),
        ('{"free": {"monthly_tokens": -1}}', "whole number >= 0 or null"),
        ('{"free": {"monthly_tokens": "many"}}', "whole number >= 0 or null"),
        ('{"free": 3}', "expected an object of limits"),
    ],
)
def test_bad_changes_name_the_variable(raw: str, message: str, tmp_path: Any) -> None:
    settings = load_settings({"TENANTRY_PLAN_BUDGETS": raw}, data_dir=str(tmp_path))
    with pytest.raises(SettingsError, match="TENANTRY_PLAN_BUDGETS") as refused:
        plan_budgets(settings.plan_budgets)
    assert message in str(refused.value)


@pytest.mark.parametrize("raw", ["[1]", "{not json"])
def test_the_variable_must_hold_a_json_object(raw: str, tmp_path: Any) -> None:
    with pytest.raises(SettingsError, match="TENANTRY_PLAN_BUDGETS"):
        load_settings({"TENANTRY_PLAN_BUDGETS": raw}, data_dir=str(tmp_path))
