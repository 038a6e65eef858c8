"""A tenant's model aliases and fallback chains over HTTP (SQLite and PostgreSQL): replaced
whole, checked before they are kept, audited, and written only by those who may change the
tenant."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.integration.api.test_models_api import member_of
from tests.integration.api.test_tenants_api import assert_problem, create

ROUTES = {
    "aliases": {"default": "smart", "smart": "byok/openai/gpt-4o"},
    "fallbacks": {"default": ["llama-3.1-8b"], "byok/openai/gpt-4o": ["llama-3.1-8b"]},
}


async def test_routes_are_replaced_read_back_and_bump_the_generation(
    client: AsyncTestClient,
) -> None:
    tenant = await create(client, "acme")
    empty = await client.get("/api/v1/tenants/acme/model-routes")
    assert empty.status_code == 200
    assert empty.json() == {"aliases": {}, "fallbacks": {}}

    put = await client.put("/api/v1/tenants/acme/model-routes", json=ROUTES)
    assert put.status_code == 200, put.text
    assert put.json() == ROUTES
    assert (await client.get(f"/api/v1/tenants/{tenant['id']}/model-routes")).json() == ROUTES
    after = (await client.get("/api/v1/tenants/acme")).json()
    assert after["generation"] == tenant["generation"] + 1, "the gateway must get them"

    again = await client.put("/api/v1/tenants/acme/model-routes", json=ROUTES)
    assert again.status_code == 200
    unchanged = (await client.get("/api/v1/tenants/acme")).json()
    assert unchanged["generation"] == after["generation"], "the same routes change nothing"

    events = [e["type"] for e in (await client.get("/api/v1/tenants/acme/events")).json()]
    assert events.count("tenant.model_routes_changed") == 1
    audit = (await client.get("/api/v1/tenants/acme/audit")).json()
    entries = audit["items"] if isinstance(audit, dict) else audit
    assert any(e["action"] == "tenant.model_routes" for e in entries)

    cleared = await client.put("/api/v1/tenants/acme/model-routes", json={})
    assert cleared.json() == {"aliases": {}, "fallbacks": {}}


@pytest.mark.parametrize(
    ("routes", "status", "detail"),
    [
        ({"aliases": {"a": "b", "b": "a"}}, 422, "a -> b -> a leads back to itself"),
        ({"aliases": {"byok/mine": "x"}}, 422, "starts with byok/"),
        ({"aliases": {"bad name": "x"}}, 422, "is not a model name"),
        ({"fallbacks": {"m": ["m"]}}, 422, "cannot fall back to itself"),
        ({"fallbacks": {"m": ["a", "b", "c", "d", "e", "f"]}}, 422, "at most 5 models"),
        ({"fallbacks": {"m": [""]}}, 400, "fallbacks"),
        ({"aliases": {"a": 3}}, 400, "Expected `str`"),
        ({"routes": {}}, 400, "routes"),
    ],
)
async def test_bad_routes_are_refused_clearly(
    client: AsyncTestClient, routes: dict[str, Any], status: int, detail: str
) -> None:
    await create(client, "acme")
    refused = await client.put("/api/v1/tenants/acme/model-routes", json=routes)
    assert_problem(refused, status, detail)
    kept = await client.get("/api/v1/tenants/acme/model-routes")
    assert kept.json() == {"aliases": {}, "fallbacks": {}}, "nothing half-kept"


async def test_a_member_reads_the_routes_but_cannot_change_them(client: AsyncTestClient) -> None:
    tenant = await create(client, "acme")
    assert (await client.put("/api/v1/tenants/acme/model-routes", json=ROUTES)).status_code == 200
    member = await member_of(client, tenant["id"], "member@acme.example")
    read = await client.get("/api/v1/tenants/acme/model-routes", headers=member)
    assert read.json() == ROUTES
    refused = await client.put("/api/v1/tenants/acme/model-routes", json={}, headers=member)
    assert_problem(refused, 403, "tenants:write")
