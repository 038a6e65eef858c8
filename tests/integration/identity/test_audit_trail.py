"""The audit log as its readers use it, on SQLite and PostgreSQL: the first admin token's
creation is in it, refusals on installation-wide routes are in it as ``denied``, platform
admins filter it by actor and time, and a tenant's owners and admins read their tenant's
part of it (and nothing else)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from tests.integration.identity.conftest import Api


async def entries(api: Api, path: str = "/api/v1/audit", **params: Any) -> list[dict[str, Any]]:
    answer = await api.client.get(path, params=params, headers=api.admin)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


async def session_of(api: Api, email: str) -> dict[str, str]:
    return api.bearer((await api.login(email))["access_token"])


async def test_the_first_admin_token_is_audited(api: Api) -> None:
    await api.make_user("ann@example.com")
    [made] = await entries(api, action="admin_token.create")
    assert (made["actor_type"], made["actor_id"], made["tenant_id"]) == ("system", None, None)
    assert made["detail"] == {"name": "initial"}
    # Its target is the token that has acted since.
    [user_created] = await entries(api, action="user.create")
    assert user_created["actor_type"] == "admin_token"
    assert made["target"] == user_created["actor_id"]
    token = api.admin["Authorization"].removeprefix("Bearer ")
    assert token not in str(await entries(api))


async def test_refusals_on_installation_wide_routes_are_audited_as_denied(api: Api) -> None:
    ann = await api.make_user("ann@example.com")
    await api.make_tenant("acme", "ann@example.com", "owner")
    headers = {**(await session_of(api, "ann@example.com")), "X-Request-ID": "req-denied-7"}
    attempts = [
        ("POST", "/api/v1/tenants", {"slug": "mine"}, "create_tenant", "tenants:create"),
        ("GET", "/api/v1/audit", None, "audit_log", "audit:read"),
        (
            "POST",
            "/api/v1/users",
            {"email": "x@example.com", "password": "long enough password"},
            "create_user",
            "users:admin",
        ),
    ]
    for method, path, body, _action, scope in attempts:
        answer = await api.client.request(method, path, json=body, headers=headers)
        assert answer.status_code == 403, answer.text
        assert scope in answer.json()["detail"]
    beyond = await api.client.post(
        "/api/v1/tokens", json={"name": "x", "scopes": ["users:admin"]}, headers=headers
    )
    assert beyond.status_code == 403, beyond.text

    denied = await entries(api, outcome="denied")
    assert [(e["action"], e["detail"]) for e in denied] == [
        *((action, {"missing_scope": scope}) for _m, _p, _b, action, scope in attempts),
        ("api_token.create", {"beyond": ["users:admin"]}),
    ]
    for entry in denied:
        assert (entry["actor_type"], entry["actor_id"]) == ("user", ann["id"])
        assert (entry["tenant_id"], entry["request_id"]) == (None, "req-denied-7")
    # Nothing was made by the refused attempts.
    assert [e["target"] for e in await entries(api, action="tenant.create")] == ["acme"]


async def test_a_refused_invitation_is_in_its_tenant_s_log(api: Api) -> None:
    await api.make_user("owner@acme.example")
    acme = await api.make_tenant("acme", "owner@acme.example", "owner")
    dave = await api.make_user("dave@example.com")
    invitation = await api.client.post(
        f"/api/v1/tenants/{acme['id']}/invitations",
        json={"email": "carol@example.com"},
        headers=api.admin,
    )
    refused = await api.client.post(
        "/api/v1/invitations/accept",
        json={"token": invitation.json()["token"]},
        headers=await session_of(api, "dave@example.com"),
    )
    assert refused.status_code == 403, refused.text
    owner = await session_of(api, "owner@acme.example")
    logged = await api.client.get(
        f"/api/v1/tenants/{acme['id']}/audit", params={"outcome": "denied"}, headers=owner
    )
    assert [(e["action"], e["actor_id"], e["target"]) for e in logged.json()] == [
        ("invitation.accept", dave["id"], invitation.json()["id"])
    ]


async def test_the_log_is_filtered_by_actor(api: Api) -> None:
    ann = await api.make_user("ann@example.com")
    bob = await api.make_user("bob@example.com")
    for email in ("ann@example.com", "bob@example.com", "ann@example.com"):
        await api.login(email)
    anns = await entries(api, actor_id=ann["id"])
    assert [e["action"] for e in anns] == ["auth.login", "auth.login"]
    assert [e["action"] for e in await entries(api, actor_id=bob["id"])] == ["auth.login"]
    assert await entries(api, actor_id="01a00000-0000-7000-8000-000000000000") == []
    by_token = await entries(api, actor_id=(await entries(api))[0]["target"])
    assert [e["action"] for e in by_token] == ["user.create", "user.create"]


def at(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["at"])


async def test_the_log_is_filtered_by_time(api: Api) -> None:
    for name in ("ann", "bob", "cid", "dee"):
        await api.make_user(f"{name}@example.com")
    every = await entries(api)
    assert len(every) == 5
    assert len({e["at"] for e in every}) == 5, "each entry has its own time"
    pivot, end = at(every[2]), at(every[4])
    ids = [e["id"] for e in every]

    assert [e["id"] for e in await entries(api, since=pivot.isoformat())] == ids[2:]
    assert [e["id"] for e in await entries(api, until=pivot.isoformat())] == ids[:2]
    window = await entries(api, since=pivot.isoformat(), until=end.isoformat())
    assert [e["id"] for e in window] == ids[2:4], "since is inclusive, until exclusive"
    # The same instant written with another offset means the same thing.
    elsewhere = pivot.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert [e["id"] for e in await entries(api, since=elsewhere)] == ids[2:]
    assert [e["id"] for e in await entries(api, until=elsewhere)] == ids[:2]
    # Combined with the other filters.
    users = await entries(api, since=pivot.isoformat(), action="user.create", limit=1)
    assert [e["id"] for e in users] == ids[2:3]

    bad = await api.client.get("/api/v1/audit", params={"since": "yesterday"}, headers=api.admin)
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert "since" in bad.json()["detail"]


async def test_tenant_owners_and_admins_read_their_tenant_s_log(api: Api) -> None:
    for email in ("owner@alpha.example", "admin@alpha.example", "member@alpha.example"):
        await api.make_user(email)
    await api.make_user("owner@bravo.example")
    alpha = await api.make_tenant("alpha", "owner@alpha.example", "owner")
    bravo = await api.make_tenant("bravo", "owner@bravo.example", "owner")
    for email, role in (("admin@alpha.example", "admin"), ("member@alpha.example", "member")):
        added = await api.client.post(
            f"/api/v1/tenants/{alpha['id']}/members",
            json={"email": email, "role": role},
            headers=api.admin,
        )
        assert added.status_code == 201, added.text
    await api.client.patch(
        f"/api/v1/tenants/{bravo['id']}", json={"name": "Bravo"}, headers=api.admin
    )
    member = await session_of(api, "member@alpha.example")
    refused = await api.client.get(f"/api/v1/tenants/{alpha['id']}/audit", headers=member)
    assert refused.status_code == 403
    assert "audit:read" in refused.json()["detail"]

    expected = [e["id"] for e in await entries(api, tenant=alpha["id"])]
    assert len(expected) == 5, "created, three members added, the member's refusal"
    for email in ("owner@alpha.example", "admin@alpha.example"):
        reader = await session_of(api, email)
        answer = await api.client.get("/api/v1/tenants/alpha/audit", headers=reader)
        assert answer.status_code == 200, answer.text
        assert [e["id"] for e in answer.json()] == expected
        assert {e["tenant_id"] for e in answer.json()} == {alpha["id"]}
        narrowed = await api.client.get(
            f"/api/v1/tenants/{alpha['id']}/audit",
            params={"outcome": "denied"},
            headers=reader,
        )
        assert [e["action"] for e in narrowed.json()] == ["tenant_audit_log"]
        # Their role in alpha opens neither bravo's log nor the installation's.
        other = await api.client.get(f"/api/v1/tenants/{bravo['id']}/audit", headers=reader)
        assert other.status_code == 404
        everything = await api.client.get("/api/v1/audit", headers=reader)
        assert everything.status_code == 403
