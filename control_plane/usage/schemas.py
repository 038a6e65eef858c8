"""Usage reports as the API shows them, and the query that asks for one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import msgspec

from control_plane.errors import InvalidInputError


class InvalidUsageQuery(InvalidInputError):
    """A usage report was asked for with a query it cannot answer."""

    status_code = 400
    problem_type = "https://tenantry.dev/problems/invalid-usage-query"
    title = "Invalid usage query"


class GroupBy(StrEnum):
    MODEL = "model"
    DAY = "day"


@dataclass(frozen=True)
class UsageQuery:
    """Days from ``start`` to ``end`` (UTC, both included; None: unbounded), grouped."""

    start: date | None
    end: date | None
    group_by: GroupBy


def _day(name: str, raw: str | None) -> date | None:
    if raw is None or not raw.strip():
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidUsageQuery(
            f"{name}={raw!r} is not a date; use YYYY-MM-DD (a UTC day, included)"
        ) from None


def parse_query(start: str | None, end: str | None, group_by: str | None) -> UsageQuery:
    """The query of ``?from=&to=&group_by=``; :class:`InvalidUsageQuery` says what is wrong."""
    first, last = _day("from", start), _day("to", end)
    if first is not None and last is not None and first > last:
        raise InvalidUsageQuery(f"from={first} is after to={last}")
    raw = (group_by or GroupBy.DAY).strip().lower()
    try:
        grouping = GroupBy(raw)
    except ValueError:
        known = ", ".join(g.value for g in GroupBy)
        raise InvalidUsageQuery(f"group_by={group_by!r}: expected one of {known}") from None
    return UsageQuery(first, last, grouping)


class UsageCounts(msgspec.Struct, kw_only=True):
    requests: int
    prompt_tokens: int
    completion_tokens: int

    def add(self, requests: int, prompt_tokens: int, completion_tokens: int) -> None:
        self.requests += requests
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens


def _zero() -> UsageCounts:
    return UsageCounts(requests=0, prompt_tokens=0, completion_tokens=0)


class UsageTotals(UsageCounts, kw_only=True):
    """Counts, and the same split by who paid: the tenant's own key (``byok``) or the
    platform."""

    byok: UsageCounts
    platform: UsageCounts

    @classmethod
    def empty(cls, **key: object) -> UsageTotals:
        return cls(
            requests=0, prompt_tokens=0, completion_tokens=0, byok=_zero(), platform=_zero(), **key
        )

    def add_row(self, byok: bool, requests: int, prompt_tokens: int, completion: int) -> None:
        self.add(requests, prompt_tokens, completion)
        (self.byok if byok else self.platform).add(requests, prompt_tokens, completion)


class UsageGroup(UsageTotals, kw_only=True, omit_defaults=True):
    """The totals of one model (``model``), or of one UTC day (``day``)."""

    model: str | None = None
    day: date | None = None


class UsageReport(msgspec.Struct, kw_only=True):
    tenant_id: str
    start: date | None = msgspec.field(name="from")
    end: date | None = msgspec.field(name="to")
    group_by: GroupBy
    totals: UsageTotals
    groups: list[UsageGroup]
