"""A tenant's plan reaches its gateway as budgets and rates, and a plan change follows."""

from __future__ import annotations

from pathlib import Path

import msgspec

from control_plane.tenants.plans import PLAN_BUDGETS
from tenant_gateway.contract import BUNDLE_FILE, Budget, GatewayBundle
from tests.integration.reconciler.conftest import ControlPlaneFactory, wait_state
from tests.waiting import eventually


def delivered_budget(data_dir: Path, tenant_id: str) -> Budget | None:
    path = data_dir / "gateways" / tenant_id / BUNDLE_FILE
    return msgspec.json.decode(path.read_bytes(), type=GatewayBundle).budget


async def test_the_plans_budget_is_in_the_bundle_and_follows_a_plan_change(
    control_plane: ControlPlaneFactory, data_dir: Path
) -> None:
    async with control_plane() as client:
        tenant = (await client.post("/api/v1/tenants", json={"slug": "thrifty"})).json()
        await wait_state(client, "thrifty", "running")
        assert delivered_budget(data_dir, tenant["id"]) == PLAN_BUDGETS["free"]
        assert PLAN_BUDGETS["free"].requests_per_minute is not None

        patched = await client.patch("/api/v1/tenants/thrifty", json={"plan": "enterprise"})
        assert patched.status_code == 200, patched.text

        async def unlimited() -> bool:
            return delivered_budget(data_dir, tenant["id"]) == Budget()

        await eventually(unlimited, timeout=30, what="the enterprise plan's budget delivered")
        await client.delete("/api/v1/tenants/thrifty")
        await wait_state(client, tenant["id"], "deleted")


async def test_changed_plan_budgets_reach_the_gateway(
    control_plane: ControlPlaneFactory, data_dir: Path
) -> None:
    changes = '{"free": {"monthly_tokens": 1234, "requests_per_minute": null}}'
    async with control_plane(TENANTRY_PLAN_BUDGETS=changes) as client:
        tenant = (await client.post("/api/v1/tenants", json={"slug": "custom"})).json()
        await wait_state(client, "custom", "running")
        budget = delivered_budget(data_dir, tenant["id"])
        assert budget is not None
        assert budget.monthly_tokens == 1234
        assert budget.requests_per_minute is None
        assert budget.tokens_per_minute == PLAN_BUDGETS["free"].tokens_per_minute
        await client.delete("/api/v1/tenants/custom")
        await wait_state(client, tenant["id"], "deleted")
