"""Reading the audit log: every tenant's entries (platform path) or one tenant's."""

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
