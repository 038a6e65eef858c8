"""What each plan lets a tenant's gateway spend: monthly budgets and per-minute rates.

The gateway enforces them (:mod:`tenant_gateway.budgets`); the control plane only says what
they are, in every gateway's bundle, so a plan change reaches a running gateway with its next
bundle. ``None`` is no limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from tenant_gateway.contract import Budget

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


def plan_budget(plan: str) -> Budget:
    """The budget of ``plan``; an unknown plan gets the smallest (``free``)."""
    return PLAN_BUDGETS.get(plan, PLAN_BUDGETS["free"])
