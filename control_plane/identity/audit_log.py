"""Reading the audit log (every tenant's entries on the platform path, or one tenant's), and
recording refused attempts, which change nothing else and so get a transaction of their own."""

from __future__ import annotations

import msgspec

from control_plane import audit
from control_plane.db.engine import Database


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def everything(self, where: audit.AuditFilter) -> list[audit.AuditEntry]:
        async with self.db.transaction(platform="read the audit log") as session:
            return await audit.query(session, where)

    async def of_tenant(self, tenant_id: str, where: audit.AuditFilter) -> list[audit.AuditEntry]:
        scoped = msgspec.structs.replace(where, tenant_id=tenant_id)
        async with self.db.transaction(tenant=tenant_id) as session:
            return await audit.query(session, scoped)

    async def record_denied(self, action: str, scope: str, tenant_id: str | None = None) -> None:
        """Audit an attempt refused for a missing ``scope``: on ``tenant_id``, or (None) on
        an installation-wide route."""
        async with self.db.transaction(tenant=tenant_id) as session:
            audit.record(
                session, action, tenant_id=tenant_id, outcome="denied", missing_scope=scope
            )
