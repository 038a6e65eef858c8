"""Accounts, logins and API tokens as a person uses them, on SQLite and PostgreSQL: a
platform admin creates a user, who logs in, sees themselves, refreshes, makes and revokes API
tokens, and logs out; no secret is ever stored in plaintext."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, text, update

from control_plane.db.models import UserRow
from tests.integration.identity.conftest import PASSWORD, Api


async def me(api: Api, token: str) -> Any:
    return await api.client.get("/api/v1/users/me", headers=api.bearer(token))


async def test_a_platform_admin_creates_a_user(api: Api) -> None:
    made = await api.client.post(
        "/api/v1/users",
        json={"email": "  Ann@Example.COM ", "password": PASSWORD},
        headers=api.admin,
    )
    assert made.status_code == 201, made.text
    user = made.json()
    assert user["email"] == "ann@example.com"
    assert user["platform_admin"] is False
    assert not {"password", "password_hash"} & set(user)

    again = await api.client.post(
        "/api/v1/users",
        json={"email": "ANN@example.com", "password": "another password"},
        headers=api.admin,
    )
    assert again.status_code == 409
    assert "exists" in again.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, 422, "not an email"),
        ({"email": "bob@example.com", "password": "too short"}, 422, "at least 12"),
        ({"email": "bob@example.com", "password": "BOB@example.com"}, 422, "email"),
        ({"email": "bob@example.com", "password": PASSWORD, "role": "god"}, 400, "role"),
    ],
)
async def test_bad_accounts_are_refused(
    api: Api, body: dict[str, Any], status: int, words: str
) -> None:
    answer = await api.client.post("/api/v1/users", json=body, headers=api.admin)
    assert answer.status_code == status, answer.text
    assert words in answer.text


async def test_only_platform_admins_create_users(api: Api) -> None:
    await api.make_user("ann@example.com")
    ann = api.bearer((await api.login("ann@example.com"))["access_token"])
    body = {"email": "mallory@example.com", "password": PASSWORD, "platform_admin": True}
    refused = await api.client.post("/api/v1/users", json=body, headers=ann)
    assert refused.status_code == 403
    assert "users:admin" in refused.json()["detail"]
    anonymous = await api.client.post("/api/v1/users", json=body)
    assert anonymous.status_code == 401

    await api.make_user("root@example.com", platform_admin=True)
    root = api.bearer((await api.login("root@example.com"))["access_token"])
    made = await api.client.post("/api/v1/users", json=body, headers=root)
    assert made.status_code == 201, made.text
    assert made.json()["platform_admin"] is True


async def test_a_user_sees_their_memberships(api: Api) -> None:
    user = await api.make_user("ann@example.com")
    alpha = await api.make_tenant("alpha", "ann@example.com", "owner")
    bravo = await api.make_tenant("bravo", "ann@example.com", "member")
    answer = await me(api, (await api.login("ann@example.com"))["access_token"])
    assert answer.status_code == 200
    body = answer.json()
    assert (body["id"], body["email"], body["platform_admin"]) == (
        user["id"],
        "ann@example.com",
        False,
    )
    assert sorted((m["tenant_id"], m["role"]) for m in body["memberships"]) == sorted(
        [(alpha["id"], "owner"), (bravo["id"], "member")]
    )
    admin_token = await api.client.get("/api/v1/users/me", headers=api.admin)
    assert admin_token.status_code == 403, "an admin token is not a person"


async def test_login_refresh_and_logout(api: Api) -> None:
    await api.make_user("ann@example.com")
    first = await api.login("ann@example.com")
    assert first["refresh_token"].startswith("tnt_rt_")
    rotated = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert set(second) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert second["refresh_token"] != first["refresh_token"]
    assert (await me(api, second["access_token"])).status_code == 200
    # The older access token of the same session lives until it expires.
    assert (await me(api, first["access_token"])).status_code == 200

    out = await api.client.post("/api/v1/auth/logout", headers=api.bearer(second["access_token"]))
    assert out.status_code == 204
    for token in (first["access_token"], second["access_token"]):
        assert (await me(api, token)).status_code == 401
    dead = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert dead.status_code == 401
    assert "session has ended" in dead.json()["detail"]

    actions = [
        e["action"]
        for e in (
            await api.client.get("/api/v1/audit", params={"action": "auth."}, headers=api.admin)
        ).json()
    ]
    assert actions == ["auth.login", "auth.refresh", "auth.logout"]


async def test_a_session_ends_after_the_refresh_lifetime(api: Api) -> None:
    await api.make_user("ann@example.com")
    pair = await api.login("ann@example.com")
    api.clock.advance(30 * 86400 + 1)
    answer = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert answer.status_code == 401
    assert "expired" in answer.json()["detail"]


async def test_api_tokens_are_created_listed_and_revoked(api: Api) -> None:
    await api.make_user("ann@example.com")
    alpha = await api.make_tenant("alpha", "ann@example.com", "admin")
    ann = api.bearer((await api.login("ann@example.com"))["access_token"])
    made = await api.client.post(
        "/api/v1/tokens",
        json={
            "name": "deploy",
            "scopes": ["tenants:read", f"credentials:write!tenant={alpha['id']}"],
        },
        headers=ann,
    )
    assert made.status_code == 201, made.text
    created = made.json()
    value = created["token"]
    assert value.startswith("tnt_pat_")
    assert created["hint"].endswith(value[-4:])
    assert created["scopes"] == sorted(["tenants:read", f"credentials:write!tenant={alpha['id']}"])

    token = api.bearer(value)
    api.clock.advance(120)
    assert (await api.client.get("/api/v1/tenants/alpha", headers=token)).status_code == 200
    listed = (await api.client.get("/api/v1/tokens", headers=ann)).json()
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0]
    assert listed[0]["last_used_at"] is not None

    # A token cannot mint tokens, nor log out a session it does not have.
    minted = await api.client.post(
        "/api/v1/tokens", json={"name": "more", "scopes": ["tenants:read"]}, headers=token
    )
    assert minted.status_code == 403
    assert (await api.client.post("/api/v1/auth/logout", headers=token)).status_code == 403

    # Someone else cannot revoke it, or even learn that it exists.
    await api.make_user("eve@example.com")
    eve = api.bearer((await api.login("eve@example.com"))["access_token"])
    theirs = await api.client.delete(f"/api/v1/tokens/{created['id']}", headers=eve)
    assert theirs.status_code == 404
    assert (await api.client.get("/api/v1/tokens", headers=eve)).json() == []

    revoked = await api.client.delete(f"/api/v1/tokens/{created['id']}", headers=ann)
    assert revoked.status_code == 204
    assert (await api.client.get("/api/v1/tenants/alpha", headers=token)).status_code == 401
    listed = (await api.client.get("/api/v1/tokens", headers=ann)).json()
    assert listed[0]["revoked_at"] is not None


@pytest.mark.parametrize(
    ("scopes", "status", "words"),
    [
        (["credentials:write"], 403, "credentials:write"),
        (["members:admin!tenant=ALPHA"], 403, "members:admin!tenant="),
        (["tenants:create"], 403, "tenants:create"),
        (["no-such:scope"], 422, "unknown scope"),
        ([], 422, "at least one scope"),
    ],
    ids=["held-nowhere", "not-on-that-tenant", "platform-only", "unknown", "none"],
)
async def test_a_user_cannot_write_scopes_they_lack(
    api: Api, scopes: list[str], status: int, words: str
) -> None:
    await api.make_user("ann@example.com")
    alpha = await api.make_tenant("alpha", "ann@example.com", "member")
    ann = api.bearer((await api.login("ann@example.com"))["access_token"])
    scopes = [scope.replace("ALPHA", alpha["id"]) for scope in scopes]
    answer = await api.client.post(
        "/api/v1/tokens", json={"name": "t", "scopes": scopes}, headers=ann
    )
    assert answer.status_code == status, answer.text
    assert words in answer.json()["detail"]


async def test_a_demoted_owner_s_token_shrinks_with_them(api: Api) -> None:
    user = await api.make_user("ann@example.com")
    alpha = await api.make_tenant("alpha", "ann@example.com", "admin")
    ann = api.bearer((await api.login("ann@example.com"))["access_token"])
    made = await api.client.post(
        "/api/v1/tokens",
        json={"name": "ci", "scopes": [f"credentials:read!tenant={alpha['id']}"]},
        headers=ann,
    )
    token = api.bearer(made.json()["token"])
    assert (
        await api.client.get("/api/v1/tenants/alpha/credentials", headers=token)
    ).status_code == 200
    demoted = await api.client.patch(
        f"/api/v1/tenants/{alpha['id']}/members/{user['id']}",
        json={"role": "member"},
        headers=api.admin,
    )
    assert demoted.status_code == 200, demoted.text
    answer = await api.client.get("/api/v1/tenants/alpha/credentials", headers=token)
    assert answer.status_code == 403
    assert "credentials:read" in answer.json()["detail"]


async def test_a_disabled_account_is_refused_everywhere(api: Api) -> None:
    user = await api.make_user("ann@example.com")
    await api.make_tenant("alpha", "ann@example.com", "member")
    pair = await api.login("ann@example.com")
    ann = api.bearer(pair["access_token"])
    token = api.bearer(
        (
            await api.client.post(
                "/api/v1/tokens", json={"name": "t", "scopes": ["tenants:read"]}, headers=ann
            )
        ).json()["token"]
    )
    db = api.client.app.state.db
    async with db.transaction() as session:
        await session.execute(
            update(UserRow).where(UserRow.id == user["id"]).values(disabled_at=api.clock())
        )
    assert (await me(api, pair["access_token"])).status_code == 401
    assert (await api.client.get("/api/v1/tenants", headers=token)).status_code == 401
    refresh = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert refresh.status_code == 401
    login = await api.client.post(
        "/api/v1/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
    )
    assert login.status_code == 401
    assert login.json()["detail"] == "email or password is wrong"


async def test_a_login_rehashes_a_password_hashed_with_older_parameters(api: Api) -> None:
    user = await api.make_user("ann@example.com")
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    db = api.client.app.state.db
    async with db.transaction() as session:
        await session.execute(
            update(UserRow).where(UserRow.id == user["id"]).values(password_hash=old)
        )
    await api.login("ann@example.com")
    async with db.transaction() as session:
        stored = await session.scalar(select(UserRow.password_hash).where(UserRow.id == user["id"]))
    assert stored is not None
    assert stored != old
    assert stored.startswith("$argon2id$")
    await api.login("ann@example.com")


async def test_no_secret_is_stored_in_plaintext(api: Api) -> None:
    await api.make_user("ann@example.com")
    await api.make_tenant("alpha", "ann@example.com", "member")
    pair = await api.login("ann@example.com")
    rotated = (
        await api.client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    ).json()
    made = await api.client.post(
        "/api/v1/tokens",
        json={"name": "t", "scopes": ["tenants:read"]},
        headers=api.bearer(rotated["access_token"]),
    )
    await api.client.post(
        "/api/v1/auth/login", json={"email": "ann@example.com", "password": "a wrong password"}
    )
    secrets = [
        PASSWORD,
        "a wrong password",
        pair["refresh_token"],
        rotated["refresh_token"],
        made.json()["token"],
        pair["access_token"],
    ]
    dump = []
    async with api.client.app.state.db.transaction(platform="test: read every table") as session:
        for table in ("users", "auth_sessions", "refresh_tokens", "api_tokens", "audit_log"):
            rows = (await session.execute(text(f"SELECT * FROM {table}"))).all()
            assert rows, table
            dump.append(repr(rows))
    stored = "\n".join(dump)
    for secret in secrets:
        assert secret not in stored
        assert secret[-12:] not in stored
