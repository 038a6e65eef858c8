"""Members and invitations of a tenant, and the audit trail they leave (SQLite and
PostgreSQL), driven by a platform admin token."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from control_plane.db.engine import Database
from control_plane.db.models import UserRow
from control_plane.db.values import new_id, utcnow
from tests.at_once import send_at_once
from tests.integration.api.test_tenants_api import assert_problem, create


async def make_user(client: AsyncTestClient, email: str) -> str:
    """An account, put straight into the table (accounts have their own API and tests)."""
    db: Database = client.app.state.db
    user_id = new_id()
    async with db.transaction() as session:
        now = utcnow()
        session.add(
            UserRow(
                id=user_id,
                email=email,
                password_hash="not-used-here",
                platform_admin=False,
                created_at=now,
                updated_at=now,
                disabled_at=None,
            )
        )
    return user_id


async def test_members_are_added_listed_changed_and_removed(client: AsyncTestClient) -> None:
    tenant = await create(client, "team")
    alice = await make_user(client, "alice@example.com")
    bob = await make_user(client, "bob@example.com")
    base = f"/api/v1/tenants/{tenant['id']}/members"

    added = await client.post(base, json={"email": "Alice@Example.com", "role": "owner"})
    assert added.status_code == 201, added.text
    assert added.json()["user_id"] == alice
    assert added.json()["role"] == "owner"
    assert (await client.post(base, json={"email": "bob@example.com"})).json()["role"] == "member"

    listed = (await client.get("/api/v1/tenants/team/members")).json()
    assert [(m["email"], m["role"]) for m in listed] == [
        ("alice@example.com", "owner"),
        ("bob@example.com", "member"),
    ]
    assert_problem(await client.post(base, json={"email": "bob@example.com"}), 409, "already")
    assert_problem(await client.post(base, json={"email": "nobody@example.com"}), 404, "invite")
    assert_problem(await client.post(base, json={"email": "not-an-email"}), 422, "email")
    assert (
        await client.post(base, json={"email": "x@example.com", "role": "god"})
    ).status_code == 400

    changed = await client.patch(f"{base}/{bob}", json={"role": "admin"})
    assert changed.json()["role"] == "admin"
    assert (await client.delete(f"{base}/{bob}")).status_code == 204
    assert_problem(await client.delete(f"{base}/{bob}"), 404, "no member")


async def test_adding_one_person_twice_at_once_makes_one_member(client: AsyncTestClient) -> None:
    tenant = await create(client, "raced")
    await make_user(client, "alice@example.com")
    base = f"/api/v1/tenants/{tenant['id']}/members"
    add = {"json": {"email": "alice@example.com"}, "headers": dict(client.headers)}
    answers = await send_at_once(client, ("POST", base, add), ("POST", base, add))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    assert [m["email"] for m in (await client.get(base)).json()] == ["alice@example.com"]


async def test_the_last_owner_stays(client: AsyncTestClient) -> None:
    tenant = await create(client, "owned")
    alice = await make_user(client, "alice@example.com")
    bob = await make_user(client, "bob@example.com")
    base = f"/api/v1/tenants/{tenant['id']}/members"
    await client.post(base, json={"email": "alice@example.com", "role": "owner"})
    assert_problem(await client.patch(f"{base}/{alice}", json={"role": "admin"}), 409, "owner")
    assert_problem(await client.delete(f"{base}/{alice}"), 409, "owner")
    await client.post(base, json={"email": "bob@example.com", "role": "owner"})
    assert (await client.patch(f"{base}/{alice}", json={"role": "admin"})).status_code == 200
    assert_problem(await client.delete(f"{base}/{bob}"), 409, "owner")


async def test_invitations_show_their_token_once(client: AsyncTestClient) -> None:
    tenant = await create(client, "invites")
    base = f"/api/v1/tenants/{tenant['id']}/invitations"
    made = await client.post(base, json={"email": "carol@example.com", "role": "admin"})
    assert made.status_code == 201, made.text
    invitation = made.json()
    assert invitation["token"].startswith("tnt_inv_")
    assert invitation["role"] == "admin"
    listed = (await client.get(base)).json()
    assert [i["id"] for i in listed] == [invitation["id"]]
    assert "token" not in listed[0]
    assert_problem(
        await client.post(base, json={"email": "c@example.com", "expires_in_days": 99}),
        422,
        "expires_in_days",
    )
    assert (await client.delete(f"{base}/{invitation['id']}")).status_code == 204
    assert (await client.get(base)).json()[0]["revoked_at"] is not None
    # An admin token is not a person: it cannot accept an invitation for itself.
    refused = await client.post("/api/v1/invitations/accept", json={"token": invitation["token"]})
    assert_problem(refused, 403, "logged-in user")


async def test_every_change_is_audited_with_actor_and_request_id(client: AsyncTestClient) -> None:
    client.headers["X-Request-ID"] = "req-audit-1"
    tenant = await create(client, "audited")
    await make_user(client, "dave@example.com")
    await client.post(f"/api/v1/tenants/{tenant['id']}/members", json={"email": "dave@example.com"})
    await client.patch(f"/api/v1/tenants/{tenant['id']}", json={"name": "Audited Inc"})
    await client.put(
        f"/api/v1/tenants/{tenant['id']}/credentials/openai", json={"api_key": "sk-a1"}
    )

    entries: list[dict[str, Any]] = (
        await client.get("/api/v1/audit", params={"tenant": tenant["id"]})
    ).json()
    actions = [e["action"] for e in entries]
    assert actions == ["tenant.create", "member.add", "tenant.update", "credential.store"]
    assert {e["actor_type"] for e in entries} == {"admin_token"}
    assert {e["request_id"] for e in entries} == {"req-audit-1"}
    assert {e["outcome"] for e in entries} == {"success"}
    assert entries[2]["detail"] == {"name": "Audited Inc"}
    assert "sk-a1" not in str(entries), "no secret in the audit log"

    mine = (await client.get(f"/api/v1/tenants/{tenant['id']}/audit")).json()
    assert [e["id"] for e in mine] == [e["id"] for e in entries]
    members_only = await client.get(
        f"/api/v1/tenants/{tenant['id']}/audit", params={"action": "member."}
    )
    assert [e["action"] for e in members_only.json()] == ["member.add"]
    page = await client.get("/api/v1/audit", params={"after": entries[1]["id"], "limit": 1})
    assert [e["id"] for e in page.json()] == [entries[2]["id"]]


async def test_a_failed_change_leaves_no_audit_entry(client: AsyncTestClient) -> None:
    tenant = await create(client, "clean")
    before = (await client.get(f"/api/v1/tenants/{tenant['id']}/audit")).json()
    refused = await client.post(
        f"/api/v1/tenants/{tenant['id']}/members", json={"email": "ghost@example.com"}
    )
    assert refused.status_code == 404
    after = (await client.get(f"/api/v1/tenants/{tenant['id']}/audit")).json()
    assert after == before
