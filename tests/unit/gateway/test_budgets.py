"""The in-process budget ledger: limits, periods, settling and totals kept on the volume."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest

from tenant_gateway.budgets import (
    BudgetSpent,
    LocalLedger,
    RateLimited,
    estimate_tokens,
    month_of,
    next_month_start,
)
from tenant_gateway.contract import Budget

NOW = datetime.datetime(2026, 12, 31, 23, 59, 30, tzinfo=datetime.UTC).timestamp()


def test_periods_are_utc_months_and_clock_minutes() -> None:
    assert month_of(NOW) == "2026-12"
    assert month_of(NOW + 60) == "2027-01"
    assert next_month_start(NOW) == "2027-01-01"


def test_an_estimate_covers_the_prompt_and_the_answers_cap() -> None:
    messages = [{"role": "user", "content": "x" * 40}]
    assert estimate_tokens(messages, 100, 512) == 11 + 4 + 100
    assert estimate_tokens(messages, None, 512) == 11 + 4 + 512


@pytest.mark.parametrize(
    ("budget", "refusal", "wording"),
    [
        (Budget(monthly_tokens=10), BudgetSpent, "monthly token budget (10) is spent"),
        (Budget(monthly_requests=1), BudgetSpent, "monthly request budget (1) is spent"),
        (Budget(requests_per_minute=1), RateLimited, "requests per minute (1) is reached"),
        (Budget(tokens_per_minute=10), RateLimited, "tokens per minute (10) is reached"),
    ],
)
async def test_each_limit_refuses_once_reached(
    budget: Budget, refusal: type[Exception], wording: str
) -> None:
    ledger = LocalLedger(None)
    await ledger.reserve(budget, 10, NOW)
    with pytest.raises(refusal, match=re.escape(wording)) as refused:
        await ledger.reserve(budget, 10, NOW)
    if isinstance(refused.value, RateLimited):
        assert refused.value.retry_after == pytest.approx(30.0)
    else:
        assert "resets on 2027-01-01" in str(refused.value)


async def test_settling_gives_back_what_the_estimate_overstated() -> None:
    ledger = LocalLedger(None)
    budget = Budget(monthly_tokens=100)
    reservation = await ledger.reserve(budget, 120, NOW)  # let in: nothing used yet
    with pytest.raises(BudgetSpent):
        await ledger.reserve(budget, 10, NOW + 1)
    await ledger.settle(reservation, 30)
    await ledger.reserve(budget, 10, NOW + 1)  # room again: 30 used


async def test_a_new_month_and_a_new_minute_start_from_zero() -> None:
    ledger = LocalLedger(None)
    budget = Budget(monthly_requests=1, requests_per_minute=1)
    await ledger.reserve(budget, 1, NOW)
    with pytest.raises(BudgetSpent):
        await ledger.reserve(budget, 1, NOW)
    await ledger.reserve(budget, 1, NOW + 60)  # January, and the next minute


async def test_monthly_totals_survive_a_restart_on_the_same_volume(tmp_path: Path) -> None:
    budget = Budget(monthly_tokens=50)
    first = LocalLedger(tmp_path, flush_interval=3600)
    reservation = await first.reserve(budget, 60, NOW)
    await first.settle(reservation, 55)
    await first.close()  # writes the totals at once
    second = LocalLedger(tmp_path)
    with pytest.raises(BudgetSpent):
        await second.reserve(budget, 1, NOW + 1)
    await second.close()
