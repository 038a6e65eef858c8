"""What each plan lets a tenant's gateway spend: monthly budgets and per-minute rates.

The gateway enforces them (:mod:`tenant_gateway.budgets`); the control plane only says what
they are, in every gateway's bundle, so a plan change reaches a running gateway with its next
bundle. ``None`` is no limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from control_plane.errors import SettingsError
from tenant_gateway.contract import Budget

VARIABLE = "TENANTRY_PLAN_BUDGETS"

PLAN_BUDGETS: Final[Mapping[str, Budget]] = {
    "free": Budget(
        monthly_tokens=1_000_000,
        monthly_requests=10_000,
        requests_per_minute=60,
        tokens_per_minute=100_000,
    ),
    "starter": Budget(
        monthly_tokens=10_000_000,
        monthly_requests=100_000,
        requests_per_minute=300,
        tokens_per_minute=500_000,
    ),
    "pro": Budget(
        monthly_tokens=100_000_000,
        monthly_requests=1_000_000,
        requests_per_minute=1_200,
        tokens_per_minute=2_000_000,
    ),
    "enterprise": Budget(),
}


def plan_budgets(changes: Mapping[str, Any]) -> dict[str, Budget]:
    """Every plan's budget: :data:`PLAN_BUDGETS` with ``changes`` (from
    ``TENANTRY_PLAN_BUDGETS``) applied field by field; a bad change names the variable."""
    budgets = dict(PLAN_BUDGETS)
    fields = set(msgspec.structs.asdict(Budget()))
    for plan, change in changes.items():
        if plan not in budgets:
            raise SettingsError(VARIABLE, f"unknown plan {plan!r}; plans: {', '.join(budgets)}")
        if not isinstance(change, dict):
            raise SettingsError(VARIABLE, f"{plan}: expected an object of limits")
        for name, value in change.items():
            if name not in fields:
                raise SettingsError(
                    VARIABLE, f"{plan}.{name}: not a limit ({', '.join(sorted(fields))})"
                )
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise SettingsError(
                    VARIABLE, f"{plan}.{name}: expected a whole number >= 0 or null"
                )
        budgets[plan] = msgspec.structs.replace(budgets[plan], **change)
    return budgets


def plan_budget(plan: str, budgets: Mapping[str, Budget] = PLAN_BUDGETS) -> Budget:
    """The budget of ``plan``; an unknown plan gets the smallest (``free``)."""
    return budgets.get(plan, budgets["free"])
