"""A tenant's usage report: requests and tokens over days, by model or by day, split by
who paid (the tenant's own provider keys, or the platform)."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from control_plane.api.authz import SCOPE
from control_plane.usage.schemas import UsageReport, parse_query
from control_plane.usage.service import UsageLedger

Day = Annotated[
    str | None, QueryParameter(name="from", description="first UTC day, YYYY-MM-DD (included)")
]
LastDay = Annotated[
    str | None, QueryParameter(name="to", description="last UTC day, YYYY-MM-DD (included)")
]


@get("/api/v1/tenants/{tenant_ref:str}/usage", opt={SCOPE: "usage:read"}, tags=["usage"])
async def tenant_usage(
    tenant_id: NamedDependency[str],
    usage: NamedDependency[UsageLedger],
    start: Day = None,
    end: LastDay = None,
    group_by: FromQuery[str | None] = None,
) -> UsageReport:
    """The tenant's totals from ``from`` to ``to`` (each optional), grouped by ``model`` or
    by ``day`` (the default); every figure also split into ``byok`` and ``platform``."""
    return await usage.report(tenant_id, parse_query(start, end, group_by))
