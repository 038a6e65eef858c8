"""Gateway API keys: made here, shown once, kept only as keyed digests (vault.digests).

The gateway checks a presented key against the digests the runtime delivers in its bundle,
so a key works without the gateway ever calling back to the control plane.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane import audit
from control_plane.db.engine import Database
from control_plane.db.models import GatewayKeyRow, TenantRow
from control_plane.db.values import aware, new_id, utcnow
from control_plane.errors import ConflictError, NotFoundError
from control_plane.tenants.events import EventSignal, append_event
from control_plane.tenants.schemas import CreatedGatewayKey, GatewayKeyCreate, GatewayKeyRead
from control_plane.vault.digests import TokenDigests
from tenant_gateway.contract import GatewayKeyDigest

KEY_PREFIX = "tgk_"


def mask(value: str) -> str:
    return f"{KEY_PREFIX}…{value[-4:]}"


def add_key(
    session: AsyncSession, digests: TokenDigests, tenant_id: str, name: str
) -> CreatedGatewayKey:
    """Add a new key to the caller's transaction and return its value (once)."""
    value = KEY_PREFIX + secrets.token_urlsafe(32)
    row = GatewayKeyRow(
        id=new_id(),
        tenant_id=tenant_id,
        name=name,
        digest=digests.gateway_key_digest(tenant_id, value),
        hint=mask(value),
        created_at=utcnow(),
        revoked_at=None,
    )
    session.add(row)
    return CreatedGatewayKey(
        id=row.id, name=name, key=value, hint=row.hint, created_at=row.created_at
    )


async def active_digests(session: AsyncSession, tenant_id: str) -> list[GatewayKeyDigest]:
    rows = await session.scalars(
        select(GatewayKeyRow)
        .where(GatewayKeyRow.tenant_id == tenant_id, GatewayKeyRow.revoked_at.is_(None))
        .order_by(GatewayKeyRow.id)
    )
    return [GatewayKeyDigest(id=row.id, digest=row.digest) for row in rows]


def _read(row: GatewayKeyRow) -> GatewayKeyRead:
    return GatewayKeyRead(
        id=row.id,
        name=row.name,
        hint=row.hint,
        created_at=aware(row.created_at),
        revoked_at=aware(row.revoked_at) if row.revoked_at else None,
    )


class GatewayKeyService:
    def __init__(
        self,
        db: Database,
        signal: EventSignal,
        digests: TokenDigests,
        on_change: Callable[[str], None],
    ) -> None:
        self.db = db
        self.signal = signal
        self.digests = digests
        self.on_change = on_change

    def _changed(self, tenant_id: str) -> None:
        self.signal.publish()
        self.on_change(tenant_id)

    async def create(self, tenant_id: str, data: GatewayKeyCreate) -> CreatedGatewayKey:
        async with self.db.transaction(tenant=tenant_id) as session:
            await self._live_tenant(session, tenant_id)
            created = add_key(session, self.digests, tenant_id, data.name)
            append_event(
                session, tenant_id, "gateway_key.created", f"gateway key {created.hint} created"
            )
            audit.record(session, "gateway_key.create", tenant_id=tenant_id, target=created.id)
        self._changed(tenant_id)
        return created

    async def list_keys(self, tenant_id: str) -> list[GatewayKeyRead]:
        async with self.db.transaction(tenant=tenant_id) as session:
            rows = await session.scalars(
                select(GatewayKeyRow)
                .where(GatewayKeyRow.tenant_id == tenant_id)
                .order_by(GatewayKeyRow.id)
            )
            return [_read(row) for row in rows]

    async def revoke(self, tenant_id: str, key_id: str) -> GatewayKeyRead:
        async with self.db.transaction(tenant=tenant_id) as session:
            row = await session.get(GatewayKeyRow, key_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFoundError(f"no gateway key {key_id!r} for this tenant")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                append_event(
                    session, tenant_id, "gateway_key.revoked", f"gateway key {row.hint} revoked"
                )
                audit.record(session, "gateway_key.revoke", tenant_id=tenant_id, target=row.id)
            result = _read(row)
        self._changed(tenant_id)
        return result

    @staticmethod
    async def _live_tenant(session: AsyncSession, tenant_id: str) -> None:
        row = await session.get(TenantRow, tenant_id)
        if row is None:
            raise NotFoundError(f"no tenant {tenant_id!r}")
        if row.delete_requested:
            raise ConflictError(f"tenant {row.slug} is being deleted")
