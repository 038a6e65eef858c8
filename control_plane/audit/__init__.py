"""The audit log: who did what to which tenant, appended in the same transaction as the change.

The API sets the acting principal and the request id for the request's task
(:func:`acting`); services call :func:`record` inside the transaction that makes the change,
so an action is in the log if and only if it happened. Refused attempts are recorded by the
API in a transaction of their own (``outcome="denied"``). Work the control plane does on its
own (the reconciler, maintenance commands) is recorded as actor ``system``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db.models import AuditRow
from control_plane.db.values import utcnow


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


@contextmanager
def acting(actor: Actor) -> Iterator[None]:
    """Attribute what happens in this block (this task and tasks it starts) to ``actor``."""
    token = _current.set(actor)
    try:
        yield
    finally:
        _current.reset(token)


def set_actor(actor: Actor) -> None:
    """Attribute the rest of this task's work to ``actor`` (a request's guard)."""
    _current.set(actor)


def record(
    session: AsyncSession,
    action: str,
    *,
    tenant_id: str | None = None,
    target: str | None = None,
    outcome: str = "success",
    **detail: Any,
) -> None:
    """Append one entry to the caller's transaction."""
    actor = _current.get()
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
