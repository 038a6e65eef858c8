"""Gateway keys: the value is shown once, listed masked, and revocable."""

from __future__ import annotations

import uuid

from litestar.testing import AsyncTestClient

from tests.integration.api.test_tenants_api import assert_problem, create


async def test_create_list_revoke(client: AsyncTestClient) -> None:
    tenant = await create(client, "acme")
    base = f"/api/v1/tenants/{tenant['id']}/gateway-keys"
    created = await client.post(base, json={"name": "ci"})
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["name"] == "ci"
    assert key["key"].startswith("tgk_")

    listed = (await client.get(base)).json()
    assert [k["name"] for k in listed] == ["default", "ci"]
    assert all("key" not in k for k in listed), "values are never listed"
    by_id = {k["id"]: k for k in listed}
    assert by_id[key["id"]]["hint"] == f"tgk_…{key['key'][-4:]}"
    assert key["key"] not in (await client.get(base)).text

    revoked = await client.delete(f"{base}/{key['id']}")
    assert revoked.status_code == 204
    after = {k["id"]: k for k in (await client.get(base)).json()}
    assert after[key["id"]]["revoked_at"] is not None
    assert after[tenant["gateway_key"]["id"]]["revoked_at"] is None

    types = [e["type"] for e in (await client.get(f"/api/v1/tenants/{tenant['id']}/events")).json()]
    assert types == ["tenant.created", "gateway_key.created", "gateway_key.revoked"]


async def test_key_without_body_gets_default_name(client: AsyncTestClient) -> None:
    await create(client, "acme")
    response = await client.post("/api/v1/tenants/acme/gateway-keys")
    assert response.status_code == 201
    assert response.json()["name"] == "default"


async def test_keys_are_scoped_to_their_tenant(client: AsyncTestClient) -> None:
    a = await create(client, "a")
    await create(client, "b")
    a_key = a["gateway_key"]["id"]
    assert_problem(await client.delete(f"/api/v1/tenants/b/gateway-keys/{a_key}"), 404, a_key)
    assert_problem(
        await client.delete(f"/api/v1/tenants/a/gateway-keys/{uuid.uuid4()}"), 404, "no gateway key"
    )
    assert_problem(await client.post("/api/v1/tenants/zzz/gateway-keys"), 404, "zzz")


async def test_no_keys_for_a_tenant_being_deleted(client: AsyncTestClient) -> None:
    await create(client, "acme")
    await client.delete("/api/v1/tenants/acme")
    assert_problem(await client.post("/api/v1/tenants/acme/gateway-keys"), 409, "being deleted")
