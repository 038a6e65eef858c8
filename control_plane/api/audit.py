"""Controllers of the audit log: installation-wide for platform admins, per tenant for its
owners and admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from control_plane.api.authz import SCOPE
from control_plane.audit import AuditEntry, AuditFilter
from control_plane.identity.audit_log import AuditLog

Limit = Annotated[int, QueryParameter(ge=1, le=1000)]
After = Annotated[int, QueryParameter(ge=0)]


class AuditController(Controller):
    tags = ["audit"]

    @get("/api/v1/audit", opt={SCOPE: "audit:read"})
    async def audit_log(
        self,
        audit_log: NamedDependency[AuditLog],
        tenant: FromQuery[str | None] = None,
        actor_id: FromQuery[str | None] = None,
        action: FromQuery[str | None] = None,
        outcome: FromQuery[str | None] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        after: After = 0,
        limit: Limit = 100,
    ) -> list[AuditEntry]:
        """Every tenant's entries, oldest first. ``tenant``: one tenant's id; ``after``: the
        last id of the previous page; ``action``: exact, or a prefix ending in ``.``."""
        where = AuditFilter(
            tenant_id=tenant,
            actor_id=actor_id,
            action=action,
            outcome=outcome,
            since=since,
            until=until,
            after=after,
            limit=limit,
        )
        return await audit_log.everything(where)

    @get("/api/v1/tenants/{tenant_ref:str}/audit", opt={SCOPE: "audit:read"})
    async def tenant_audit_log(
        self,
        tenant_id: NamedDependency[str],
        audit_log: NamedDependency[AuditLog],
        actor_id: FromQuery[str | None] = None,
        action: FromQuery[str | None] = None,
        outcome: FromQuery[str | None] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        after: After = 0,
        limit: Limit = 100,
    ) -> list[AuditEntry]:
        """This tenant's entries, oldest first."""
        where = AuditFilter(
            tenant_id=tenant_id,
            actor_id=actor_id,
            action=action,
            outcome=outcome,
            since=since,
            until=until,
            after=after,
            limit=limit,
        )
        return await audit_log.of_tenant(tenant_id, where)
