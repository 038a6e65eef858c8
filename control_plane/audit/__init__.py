"""The audit log: who did what to which tenant, appended in the same transaction as the change.

The API sets the acting principal and the request id for the request's task
(:func:`acting`); services call :func:`record` inside the transaction that makes the change,
so an action is in the log if and only if it happened. Refused attempts are recorded by the
API in a transaction of their own (``outcome="denied"``). Work the control plane does on its
own (the reconciler, maintenance commands) is recorded as actor ``system``.

The acting principal is also handed to the database layer (:func:`engine.working_for`), which
names it in the line it logs for every platform-mode transaction: reads across tenants leave
that line, not an entry here (an entry per read would bury the changes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db import engine
from control_plane.db.models import AuditRow
from control_plane.db.values import aware, utcnow


@dataclass(frozen=True)
class Actor:
    type: str
    """``user``, ``api_token``, ``admin_token`` or ``system``."""
    id: str | None = None
    request_id: str | None = None


SYSTEM_ACTOR = Actor("system")
_current: ContextVar[Actor] = ContextVar("tenantry_audit_actor", default=SYSTEM_ACTOR)


def current_actor() -> Actor:
    return _current.get()


def _fields(actor: Actor) -> engine.CallerFields:
    return {"actor_type": actor.type, "actor_id": actor.id, "request_id": actor.request_id}


@contextmanager
def acting(actor: Actor) -> Iterator[None]:
    """Attribute what happens in this block (this task and tasks it starts) to ``actor``."""
    token = _current.set(actor)
    named = engine.working_for(_fields(actor))
    try:
        yield
    finally:
        engine.stop_working_for(named)
        _current.reset(token)


def set_actor(actor: Actor) -> None:
    """Attribute the rest of this task's work to ``actor`` (a request's guard)."""
    _current.set(actor)
    engine.working_for(_fields(actor))


def record(
    session: AsyncSession,
    action: str,
    *,
    tenant_id: str | None = None,
    target: str | None = None,
    outcome: str = "success",
    **detail: Any,
) -> None:
    """Append one entry to the caller's transaction; in platform mode the entry says why
    (``platform_reason``)."""
    actor = _current.get()
    reason = session.info.get(engine.PLATFORM_REASON)
    if reason is not None:
        detail = {**detail, "platform_reason": reason}
    session.add(
        AuditRow(
            at=utcnow(),
            actor_type=actor.type,
            actor_id=actor.id,
            tenant_id=tenant_id,
            action=action,
            target=target,
            request_id=actor.request_id,
            outcome=outcome,
            detail=detail,
        )
    )


class AuditEntry(msgspec.Struct, kw_only=True):
    """One entry as the API shows it."""

    id: int
    at: datetime
    actor_type: str
    actor_id: str | None
    tenant_id: str | None
    action: str
    target: str | None
    request_id: str | None
    outcome: str
    detail: dict[str, Any]


class AuditFilter(msgspec.Struct, kw_only=True):
    tenant_id: str | None = None
    actor_id: str | None = None
    action: str | None = None
    """An exact action, or a prefix ending in ``.`` (``member.``)."""
    outcome: str | None = None
    since: datetime | None = None
    """Entries at or after this time."""
    until: datetime | None = None
    """Entries before this time."""
    after: int = 0
    """Entries with a larger id (the previous page's last id)."""
    limit: int = 100


def _utc(value: datetime) -> datetime:
    """``value`` in UTC, as every entry is stored (SQLite compares the digits, not the
    instant); a time without an offset is taken as UTC."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


async def query(session: AsyncSession, where: AuditFilter) -> list[AuditEntry]:
    """Entries matching ``where``, oldest first."""
    statement = select(AuditRow).where(AuditRow.id > where.after).order_by(AuditRow.id)
    if where.tenant_id is not None:
        statement = statement.where(AuditRow.tenant_id == where.tenant_id)
    if where.actor_id is not None:
        statement = statement.where(AuditRow.actor_id == where.actor_id)
    if where.action is not None:
        if where.action.endswith("."):
            statement = statement.where(AuditRow.action.startswith(where.action, autoescape=True))
        else:
            statement = statement.where(AuditRow.action == where.action)
    if where.outcome is not None:
        statement = statement.where(AuditRow.outcome == where.outcome)
    if where.since is not None:
        statement = statement.where(AuditRow.at >= _utc(where.since))
    if where.until is not None:
        statement = statement.where(AuditRow.at < _utc(where.until))
    rows = await session.scalars(statement.limit(where.limit))
    return [
        AuditEntry(
            id=row.id,
            at=aware(row.at),
            actor_type=row.actor_type,
            actor_id=row.actor_id,
            tenant_id=row.tenant_id,
            action=row.action,
            target=row.target,
            request_id=row.request_id,
            outcome=row.outcome,
            detail=dict(row.detail or {}),
        )
        for row in rows
    ]
