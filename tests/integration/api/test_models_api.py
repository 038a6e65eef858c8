"""The model catalog over HTTP (SQLite and PostgreSQL): platform admins register, change and
remove the fleet's models; a tenant's people see the enabled ones their plan allows; every
change is audited; nobody else may write it."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.integration.api.test_tenants_api import assert_problem, create

PASSWORD = "correct horse battery staple"
LLAMA = {
    "name": "llama-3.1-8b",
    "base_url": "http://vllm:8000/v1/",
    "served_model_name": "meta-llama/Llama-3.1-8B-Instruct",
    "context_length": 131072,
    "input_price_micros": 150000,
    "output_price_micros": 600000,
}


async def register(client: AsyncTestClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/models", json={**LLAMA, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def member_of(client: AsyncTestClient, tenant_id: str, email: str) -> dict[str, str]:
    """Headers of a freshly logged-in ``member`` of the tenant."""
    made = await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
    assert made.status_code == 201, made.text
    added = await client.post(
        f"/api/v1/tenants/{tenant_id}/members", json={"email": email, "role": "member"}
    )
    assert added.status_code == 201, added.text
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def test_models_are_registered_listed_changed_and_removed(client: AsyncTestClient) -> None:
    created = await register(client, plans=["pro", "enterprise"])
    assert created["base_url"] == "http://vllm:8000/v1", "the trailing slash is dropped"
    assert created["enabled"] is True
    assert created["plans"] == ["pro", "enterprise"]
    assert created["input_price_micros"] == 150000
    await register(client, name="qwen-7b", served_model_name=None, context_length=None)

    listed = (await client.get("/api/v1/models")).json()
    assert [m["name"] for m in listed] == ["llama-3.1-8b", "qwen-7b"]
    by_name = await client.get("/api/v1/models/llama-3.1-8b")
    by_id = await client.get(f"/api/v1/models/{created['id']}")
    assert by_name.json() == by_id.json() == created

    changed = await client.patch(
        "/api/v1/models/llama-3.1-8b",
        json={"enabled": False, "context_length": None, "output_price_micros": 700000},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["enabled"], body["context_length"], body["output_price_micros"]) == (
        False,
        None,
        700000,
    )
    assert body["served_model_name"] == LLAMA["served_model_name"], "left out: left alone"
    assert body["plans"] == ["pro", "enterprise"]

    renamed = await client.patch(f"/api/v1/models/{created['id']}", json={"name": "llama-8b"})
    assert renamed.json()["name"] == "llama-8b"
    assert (await client.get("/api/v1/models/llama-3.1-8b")).status_code == 404

    removed = await client.delete("/api/v1/models/llama-8b")
    assert removed.status_code == 204
    assert [m["name"] for m in (await client.get("/api/v1/models")).json()] == ["qwen-7b"]
    assert_problem(await client.delete("/api/v1/models/llama-8b"), 404, "llama-8b")
    assert_problem(await client.patch("/api/v1/models/nope", json={"enabled": True}), 404, "nope")


async def test_a_taken_name_is_a_conflict(client: AsyncTestClient) -> None:
    await register(client)
    other = await register(client, name="qwen-7b")
    assert_problem(await client.post("/api/v1/models", json=LLAMA), 409, "llama-3.1-8b")
    assert_problem(
        await client.patch(f"/api/v1/models/{other['id']}", json={"name": "llama-3.1-8b"}),
        409,
        "llama-3.1-8b",
    )


@pytest.mark.parametrize(
    ("fields", "status", "detail"),
    [
        ({"name": "byok/openai/gpt-4o"}, 422, "byok/"),
        ({"name": ""}, 422, "model name"),
        ({"base_url": "vllm:8000/v1"}, 422, "http(s) URL"),
        ({"base_url": "http://vllm:8000/"}, 422, "ending in /v1"),
        ({"base_url": "http://user:secret@vllm:8000/v1"}, 422, "credentials"),
        ({"base_url": "http://vllm:8000/v1?x=1"}, 422, "query"),
        ({"plans": ["pro", "platinum"]}, 422, "'platinum'"),
        ({"input_price_micros": -1}, 400, "input_price_micros"),
        ({"input_price_micros": 0.5}, 400, "input_price_micros"),
        ({"context_length": 0}, 400, "context_length"),
        ({"colour": "blue"}, 400, "colour"),
    ],
)
async def test_bad_entries_are_refused_with_what_is_wrong(
    client: AsyncTestClient, fields: dict[str, Any], status: int, detail: str
) -> None:
    assert_problem(await client.post("/api/v1/models", json={**LLAMA, **fields}), status, detail)
    assert (await client.get("/api/v1/models")).json() == [], "nothing was stored"


async def test_a_patch_is_checked_like_a_create(client: AsyncTestClient) -> None:
    await register(client)
    path = "/api/v1/models/llama-3.1-8b"
    assert_problem(await client.patch(path, json={"base_url": "ftp://x/v1"}), 422, "http(s)")
    assert_problem(await client.patch(path, json={"plans": ["gold"]}), 422, "'gold'")
    assert_problem(await client.patch(path, json={"enabled": None}), 400, "enabled")
    assert (await client.get(path)).json()["base_url"] == "http://vllm:8000/v1"


async def test_a_tenant_sees_the_enabled_models_its_plan_allows(client: AsyncTestClient) -> None:
    free = await create(client, "freebie", plan="free")
    pro = await create(client, "business", plan="pro")
    await register(client, name="everyone")
    await register(client, name="pro-only", plans=["pro"])
    await register(client, name="switched-off", enabled=False)

    def names(response: Any) -> list[str]:
        assert response.status_code == 200, response.text
        return [m["name"] for m in response.json()]

    assert names(await client.get("/api/v1/tenants/freebie/models")) == ["everyone"]
    seen = await client.get(f"/api/v1/tenants/{pro['id']}/models")
    assert names(seen) == ["everyone", "pro-only"]
    assert set(seen.json()[0]) == {
        "name",
        "context_length",
        "input_price_micros",
        "output_price_micros",
    }, "a tenant is not told where the fleet serves a model"

    await client.patch("/api/v1/tenants/freebie", json={"plan": "pro"})
    assert names(await client.get(f"/api/v1/tenants/{free['id']}/models")) == [
        "everyone",
        "pro-only",
    ]


async def test_a_tenant_member_reads_its_models_but_cannot_touch_the_catalog(
    client: AsyncTestClient,
) -> None:
    tenant = await create(client, "acme", plan="starter")
    await create(client, "other")
    await register(client)
    member = await member_of(client, tenant["id"], "member@acme.example")

    mine = await client.get("/api/v1/tenants/acme/models", headers=member)
    assert [m["name"] for m in mine.json()] == ["llama-3.1-8b"]
    assert_problem(await client.get("/api/v1/tenants/other/models", headers=member), 404, "")

    assert_problem(await client.get("/api/v1/models", headers=member), 403, "models:read")
    refused = [
        await client.post("/api/v1/models", json={**LLAMA, "name": "mine"}, headers=member),
        await client.patch("/api/v1/models/llama-3.1-8b", json={"enabled": False}, headers=member),
        await client.delete("/api/v1/models/llama-3.1-8b", headers=member),
    ]
    for response in refused:
        assert_problem(response, 403, "models:write")
    entries = (await client.get("/api/v1/models")).json()
    assert [(m["name"], m["enabled"]) for m in entries] == [("llama-3.1-8b", True)]


async def test_every_change_is_audited(client: AsyncTestClient) -> None:
    created = await register(client)
    await client.patch("/api/v1/models/llama-3.1-8b", json={"enabled": False, "plans": []})
    await client.patch("/api/v1/models/llama-3.1-8b", json={"enabled": False})  # no change
    await client.delete("/api/v1/models/llama-3.1-8b", headers={"X-Request-ID": "rm-llama"})

    entries = (await client.get("/api/v1/audit", params={"action": "model."})).json()
    assert [(e["action"], e["target"]) for e in entries] == [
        ("model.create", created["id"]),
        ("model.update", created["id"]),
        ("model.delete", created["id"]),
    ]
    assert entries[1]["detail"]["fields"] == ["enabled"]
    assert all(e["actor_type"] == "admin_token" and e["tenant_id"] is None for e in entries)
    assert entries[2]["request_id"] == "rm-llama"
