"""The tenant routes of the wire contract, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

TENANT_FIELDS = {
    "id",
    "slug",
    "name",
    "plan",
    "state",
    "endpoint",
    "created_at",
    "updated_at",
    "generation",
    "observed_generation",
    "reason",
}


def assert_problem(response: Any, status: int, detail_part: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    assert detail_part in body["detail"], body
    return body


async def create(client: AsyncTestClient, slug: str, **extra: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/tenants", json={"slug": slug, **extra})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_returns_a_provisioning_tenant_and_its_first_key(
    client: AsyncTestClient,
) -> None:
    body = await create(client, "acme", plan="pro", name="Acme Inc")
    assert set(body) >= TENANT_FIELDS
    assert body["slug"] == "acme"
    assert body["name"] == "Acme Inc"
    assert body["plan"] == "pro"
    assert body["state"] == "provisioning"
    assert body["endpoint"] is None
    assert (body["generation"], body["observed_generation"]) == (1, 0)
    uuid.UUID(body["id"])
    key = body["gateway_key"]
    assert key["key"].startswith("tgk_")
    assert key["hint"].endswith(key["key"][-4:])

    events = (await client.get(f"/api/v1/tenants/{body['id']}/events")).json()
    assert [e["type"] for e in events] == ["tenant.created"]


async def test_name_defaults_to_slug_and_plan_to_free(client: AsyncTestClient) -> None:
    body = await create(client, "plain")
    assert (body["name"], body["plan"]) == ("plain", "free")


async def test_taken_slug_is_a_conflict(client: AsyncTestClient) -> None:
    await create(client, "acme")
    response = await client.post("/api/v1/tenants", json={"slug": "acme"})
    assert_problem(response, 409, "slug 'acme' is taken")


async def test_idempotency_key_returns_the_same_tenant(client: AsyncTestClient) -> None:
    headers = {"Idempotency-Key": "create-acme-1"}
    first = await client.post("/api/v1/tenants", json={"slug": "acme"}, headers=headers)
    again = await client.post("/api/v1/tenants", json={"slug": "acme"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["gateway_key"] is not None
    assert again.json()["gateway_key"] is None, "a key value is shown only once"
    page = (await client.get("/api/v1/tenants")).json()
    assert [t["slug"] for t in page["items"]] == ["acme"]


async def test_idempotency_key_reused_with_another_body_is_refused(
    client: AsyncTestClient,
) -> None:
    headers = {"Idempotency-Key": "k"}
    await client.post("/api/v1/tenants", json={"slug": "acme"}, headers=headers)
    response = await client.post("/api/v1/tenants", json={"slug": "other"}, headers=headers)
    assert_problem(response, 409, "different request")


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"slug": "Not_A_Label"}, 422, "not a DNS label"),
        ({"slug": "x" * 64}, 422, "at most 63"),
        ({"slug": "acme", "plan": "platinum"}, 422, "unknown plan 'platinum'"),
        ({"slug": "acme", "color": "red"}, 400, "unknown field `color`"),
        ({"name": "no slug"}, 400, "missing required field `slug`"),
        ({"slug": 7}, 400, "Expected `str`"),
    ],
)
async def test_bad_input_is_a_problem_that_says_what_is_wrong(
    client: AsyncTestClient, body: dict[str, Any], status: int, detail: str
) -> None:
    response = await client.post("/api/v1/tenants", json=body)
    assert_problem(response, status, detail)
    assert (await client.get("/api/v1/tenants")).json()["items"] == []


async def test_invalid_json_is_a_problem(client: AsyncTestClient) -> None:
    response = await client.post(
        "/api/v1/tenants", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "")


async def test_list_pages_with_a_cursor(client: AsyncTestClient) -> None:
    created = [(await create(client, f"t{n}"))["id"] for n in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/tenants", params=params)).json()
        pages += 1
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == created, "pages cover every tenant once, in creation order"


async def test_list_filters_by_state(client: AsyncTestClient) -> None:
    await create(client, "a")
    b = await create(client, "b")
    await client.delete(f"/api/v1/tenants/{b['id']}")
    deleting = (await client.get("/api/v1/tenants", params={"state": "deleting"})).json()
    provisioning = (await client.get("/api/v1/tenants", params={"state": "provisioning"})).json()
    assert [t["slug"] for t in deleting["items"]] == ["b"]
    assert [t["slug"] for t in provisioning["items"]] == ["a"]


async def test_list_rejects_bad_parameters(client: AsyncTestClient) -> None:
    assert_problem(await client.get("/api/v1/tenants", params={"cursor": "garbage"}), 422, "cursor")
    assert_problem(await client.get("/api/v1/tenants", params={"state": "sleepy"}), 400, "")
    assert_problem(await client.get("/api/v1/tenants", params={"limit": 0}), 400, "")


async def test_get_by_id_or_slug(client: AsyncTestClient) -> None:
    tenant = await create(client, "acme")
    by_id = (await client.get(f"/api/v1/tenants/{tenant['id']}")).json()
    by_slug = (await client.get("/api/v1/tenants/acme")).json()
    assert by_id == by_slug
    assert "gateway_key" not in by_id
    assert_problem(await client.get("/api/v1/tenants/nobody"), 404, "no tenant 'nobody'")
    missing = str(uuid.uuid4())
    assert_problem(await client.get(f"/api/v1/tenants/{missing}"), 404, missing)


async def test_patch_changes_fields_and_bumps_generation_for_spec_changes(
    client: AsyncTestClient,
) -> None:
    tenant = await create(client, "acme")
    renamed = (await client.patch("/api/v1/tenants/acme", json={"name": "ACME"})).json()
    assert (renamed["name"], renamed["generation"]) == ("ACME", 1)
    replanned = (await client.patch("/api/v1/tenants/acme", json={"plan": "pro"})).json()
    assert (replanned["plan"], replanned["generation"]) == ("pro", 2)
    suspended = (
        await client.patch(f"/api/v1/tenants/{tenant['id']}", json={"suspended": True})
    ).json()
    assert (suspended["suspended"], suspended["generation"]) == (True, 3)
    unchanged = (await client.patch("/api/v1/tenants/acme", json={"suspended": True})).json()
    assert unchanged["generation"] == 3
    events = [e["type"] for e in (await client.get("/api/v1/tenants/acme/events")).json()]
    assert events == ["tenant.created", "tenant.plan_changed", "tenant.suspend_requested"]


async def test_patch_rejects_bad_input(client: AsyncTestClient) -> None:
    await create(client, "acme")
    assert_problem(await client.patch("/api/v1/tenants/acme", json={"slug": "x"}), 400, "slug")
    assert_problem(
        await client.patch("/api/v1/tenants/acme", json={"plan": "gold"}), 422, "unknown plan"
    )
    assert_problem(await client.patch("/api/v1/tenants/acme", json={"name": ""}), 400, "")
    assert_problem(await client.patch("/api/v1/tenants/ghost", json={"name": "x"}), 404, "ghost")


async def test_delete_marks_deleting_and_is_idempotent(client: AsyncTestClient) -> None:
    tenant = await create(client, "acme")
    first = await client.delete(f"/api/v1/tenants/{tenant['id']}")
    again = await client.delete(f"/api/v1/tenants/{tenant['id']}")
    assert first.status_code == again.status_code == 202
    assert first.json()["state"] == again.json()["state"] == "deleting"
    assert first.json()["generation"] == again.json()["generation"] == 2
    # A tenant being deleted cannot be changed, and still holds its slug.
    assert_problem(
        await client.patch(f"/api/v1/tenants/{tenant['id']}", json={"plan": "pro"}),
        409,
        "being deleted",
    )
    assert_problem(await client.post("/api/v1/tenants", json={"slug": "acme"}), 409, "taken")


async def test_admin_api_needs_a_valid_token(client: AsyncTestClient) -> None:
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic x"},
    ):
        response = await client.get("/api/v1/tenants", headers=headers)
        assert_problem(response, 401, "")
        assert response.headers["www-authenticate"].startswith("Bearer")
    response = await client.post(
        "/api/v1/tenants", json={"slug": "x"}, headers={"Authorization": ""}
    )
    assert_problem(response, 401, "missing Authorization")


async def test_unknown_route_is_a_problem(client: AsyncTestClient) -> None:
    assert_problem(await client.get("/api/v1/nothing-here"), 404, "/api/v1/nothing-here")
    assert_problem(await client.put("/api/v1/tenants"), 405, "")
