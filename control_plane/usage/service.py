"""The usage ledger: stores each reported event once and keeps the daily rollups exact.

One batch is one transaction, scoped to the gateway's tenant (row-level security on
PostgreSQL). Events are inserted with ``ON CONFLICT DO NOTHING ... RETURNING id`` (on
PostgreSQL and SQLite alike), so a redelivered event inserts nothing and returns nothing;
only the events returned are added to ``usage_daily``, with one upsert of their totals per
(day, model, payer). Two deliveries of the same batch at once cannot both count it: on
PostgreSQL the second waits on the first's uncommitted rows and then conflicts, on SQLite
transactions are serialized (``BEGIN IMMEDIATE``). Rows are written in key order, so
concurrent batches of one tenant take their locks in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.dialects import postgresql, sqlite

from control_plane.db.engine import Database
from control_plane.db.models import UsageDailyRow, UsageEventRow
from control_plane.db.values import aware, utcnow
from control_plane.errors import InvalidInputError, PermissionDenied
from control_plane.usage.schemas import GroupBy, UsageGroup, UsageQuery, UsageReport, UsageTotals
from tenant_gateway.contract import UsageBatch, UsageEvent, UsageReceipt

MAX_TOKENS = 1 << 40
"""Most tokens one event may report (far beyond any model's context; keeps sums in range)."""

_EVENTS = UsageEventRow.__table__
_DAILY = UsageDailyRow.__table__
RollupKey = tuple[date, str, bool]


class UsageRefused(PermissionDenied):
    """A gateway reported usage that is not its own tenant's."""

    problem_type = "https://tenantry.dev/problems/usage-refused"
    title = "Usage refused"


class InvalidUsageBatch(InvalidInputError):
    """A usage batch that is not what the gateway contract describes."""

    status_code = 400
    problem_type = "https://tenantry.dev/problems/invalid-usage-batch"
    title = "Invalid usage batch"


def read_batch(body: bytes) -> UsageBatch:
    """The batch in a gateway's request body; :class:`InvalidUsageBatch` says what is wrong."""
    try:
        return msgspec.json.decode(body, type=UsageBatch)
    except msgspec.ValidationError as exc:
        raise InvalidUsageBatch(f"invalid usage batch: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidUsageBatch(f"the usage batch is not valid JSON: {exc}") from None


class UsageLedger:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._insert: Callable[[Any], Any] = sqlite.insert if db.is_sqlite else postgresql.insert

    async def ingest(self, tenant_id: str, events: Sequence[UsageEvent]) -> UsageReceipt:
        """Store the events of ``tenant_id``'s gateway that are new; count each once."""
        _check(tenant_id, events)
        unique: dict[str, UsageEvent] = {}
        for event in events:
            unique.setdefault(event.id, event)
        ordered = [unique[key] for key in sorted(unique)]
        received_at = utcnow()
        async with self.db.transaction(tenant=tenant_id) as session:
            inserted = set(
                await session.scalars(
                    self._insert(_EVENTS)
                    .on_conflict_do_nothing(index_elements=["tenant_id", "id"])
                    .returning(_EVENTS.c.id),
                    [_event_row(tenant_id, e, received_at) for e in ordered],
                )
            )
            rollups = _rollups(e for e in ordered if e.id in inserted)
            if rollups:
                await session.execute(self._upsert_rollups(tenant_id, rollups))
        return UsageReceipt(received=len(events), stored=len(inserted))

    def _upsert_rollups(self, tenant_id: str, rollups: dict[RollupKey, list[int]]) -> Any:
        statement = self._insert(_DAILY).values(
            [
                {
                    "tenant_id": tenant_id,
                    "day": day,
                    "model": model,
                    "byok": byok,
                    "requests": counts[0],
                    "prompt_tokens": counts[1],
                    "completion_tokens": counts[2],
                }
                for (day, model, byok), counts in sorted(rollups.items())
            ]
        )
        added = statement.excluded
        return statement.on_conflict_do_update(
            index_elements=["tenant_id", "day", "model", "byok"],
            set_={
                "requests": _DAILY.c.requests + added.requests,
                "prompt_tokens": _DAILY.c.prompt_tokens + added.prompt_tokens,
                "completion_tokens": _DAILY.c.completion_tokens + added.completion_tokens,
            },
        )

    async def report(self, tenant_id: str, query: UsageQuery) -> UsageReport:
        """The tenant's totals over the query's days, grouped by model or by day."""
        key = _DAILY.c.model if query.group_by is GroupBy.MODEL else _DAILY.c.day
        where: list[ColumnElement[bool]] = [_DAILY.c.tenant_id == tenant_id]
        if query.start is not None:
            where.append(_DAILY.c.day >= query.start)
        if query.end is not None:
            where.append(_DAILY.c.day <= query.end)
        statement = (
            select(
                key,
                _DAILY.c.byok,
                func.sum(_DAILY.c.requests),
                func.sum(_DAILY.c.prompt_tokens),
                func.sum(_DAILY.c.completion_tokens),
            )
            .where(*where)
            .group_by(key, _DAILY.c.byok)
            .order_by(key)
        )
        async with self.db.transaction(tenant=tenant_id) as session:
            rows = (await session.execute(statement)).all()
        totals = UsageTotals.empty()
        groups: dict[Any, UsageGroup] = {}
        for value, byok, requests, prompt, completion in rows:
            counts = (int(requests), int(prompt), int(completion))
            totals.add_row(bool(byok), *counts)
            if value not in groups:
                field = "model" if query.group_by is GroupBy.MODEL else "day"
                groups[value] = UsageGroup.empty(**{field: value})  # type: ignore[assignment]
            groups[value].add_row(bool(byok), *counts)
        return UsageReport(
            tenant_id=tenant_id,
            start=query.start,
            end=query.end,
            group_by=query.group_by,
            totals=totals,
            groups=list(groups.values()),
        )


def _check(tenant_id: str, events: Sequence[UsageEvent]) -> None:
    foreign = sorted({e.tenant_id for e in events} - {tenant_id})
    if foreign:
        raise UsageRefused(
            f"the batch holds events of another tenant ({', '.join(foreign)}); a gateway"
            " reports its own tenant's usage only, and nothing of this batch was stored"
        )
    for event in events:
        for count in (event.prompt_tokens, event.completion_tokens):
            if count is not None and count > MAX_TOKENS:
                raise InvalidInputError(
                    f"event {event.id} reports {count} tokens; at most {MAX_TOKENS} are possible"
                )


def _event_row(tenant_id: str, event: UsageEvent, received_at: Any) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "id": event.id,
        "at": aware(event.at),
        "model": event.model,
        "provider": event.provider,
        "byok": event.byok,
        "stream": event.stream,
        "outcome": event.outcome,
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "latency": event.latency,
        "time_to_first_token": event.time_to_first_token,
        "received_at": received_at,
    }


def _rollups(events: Iterable[UsageEvent]) -> dict[RollupKey, list[int]]:
    """Requests, prompt and completion tokens per (UTC day, model, BYOK)."""
    rollups: dict[RollupKey, list[int]] = {}
    for event in events:
        key = (aware(event.at).astimezone(UTC).date(), event.model, event.byok)
        counts = rollups.setdefault(key, [0, 0, 0])
        counts[0] += 1
        counts[1] += event.prompt_tokens or 0
        counts[2] += event.completion_tokens or 0
    return rollups
