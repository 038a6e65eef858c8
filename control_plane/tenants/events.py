"""Tenant events: the append-only progress log, and an in-process signal for live streams."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db.models import TenantEventRow
from control_plane.db.values import aware, utcnow
from control_plane.tenants.schemas import TenantEventRead


def append_event(
    session: AsyncSession, tenant_id: str, type_: str, message: str, **data: Any
) -> None:
    """Add an event to the caller's transaction, so it commits with the change it records."""
    session.add(
        TenantEventRow(
            tenant_id=tenant_id, type=type_, message=message, data=data, created_at=utcnow()
        )
    )


def event_read(row: TenantEventRow) -> TenantEventRead:
    return TenantEventRead(
        id=row.id,
        tenant_id=row.tenant_id,
        type=row.type,
        message=row.message,
        data=dict(row.data or {}),
        created_at=aware(row.created_at),
    )


async def events_after(
    session: AsyncSession, tenant_id: str, after: int, limit: int
) -> list[TenantEventRead]:
    rows = await session.scalars(
        select(TenantEventRow)
        .where(TenantEventRow.tenant_id == tenant_id, TenantEventRow.id > after)
        .order_by(TenantEventRow.id)
        .limit(limit)
    )
    return [event_read(row) for row in rows]


class EventSignal:
    """Wakes live event streams after a commit; streams still poll, so a miss only delays."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def publish(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self, timeout: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)
