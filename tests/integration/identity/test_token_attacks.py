"""Access tokens, refresh tokens and API tokens under attack: each forgery or misuse is
refused with a 401/403/404 problem that says why (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.integration.identity.conftest import Api


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pad(segment: str) -> str:
    return segment + "=" * (-len(segment) % 4)


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
        signature,
    )


async def me(api: Api, token: str) -> Any:
    return await api.client.get("/api/v1/users/me", headers=api.bearer(token))


async def refused(api: Api, token: str, words: str) -> None:
    answer = await me(api, token)
    assert answer.status_code == 401, answer.text
    assert words in answer.json()["detail"], answer.json()
    assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_a_logged_in_user_sees_themselves(api: Api) -> None:
    user = await api.make_user("ann@example.com")
    pair = await api.login("ANN@example.com")
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == 900
    answer = await me(api, pair["access_token"])
    assert answer.status_code == 200
    assert answer.json()["id"] == user["id"]
    assert answer.json()["memberships"] == []
    header, claims, _ = parts(pair["access_token"])
    assert header["alg"] == "EdDSA"
    assert header["kid"]
    assert claims["sub"] == user["id"]
    assert claims["exp"] - claims["iat"] == 900


async def test_an_expired_access_token_is_refused(api: Api) -> None:
    await api.make_user("ann@example.com")
    pair = await api.login("ann@example.com")
    api.clock.advance(899)
    assert (await me(api, pair["access_token"])).status_code == 200
    api.clock.advance(10)
    await refused(api, pair["access_token"], "expired")


async def test_tampered_tokens_are_refused(api: Api) -> None:
    victim = await api.make_user("victim@example.com", platform_admin=True)
    await api.make_user("eve@example.com")
    token = (await api.login("eve@example.com"))["access_token"]
    header, claims, signature = parts(token)

    claims["sub"] = victim["id"]  # become someone else, keep the signature
    forged = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{signature}"
    await refused(api, forged, "signature")

    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    await refused(api, token.rsplit(".", 1)[0] + "." + flipped, "signature")
    await refused(api, "not.a.jwt", "malformed")


async def test_alg_none_and_algorithm_confusion_are_refused(api: Api) -> None:
    await api.make_user("eve@example.com")
    token = (await api.login("eve@example.com"))["access_token"]
    header, claims, _ = parts(token)

    none_header = {**header, "alg": "none"}
    unsigned = f"{b64(json.dumps(none_header).encode())}.{b64(json.dumps(claims).encode())}."
    await refused(api, unsigned, "'none' is not accepted")

    ring = api.client.app.state.sessions.access.ring
    public = ring.public_key(header["kid"]).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    confused = jwt.encode(claims, public, algorithm="HS256", headers={"kid": header["kid"]})
    await refused(api, confused, "'HS256' is not accepted")


async def test_keys_are_looked_up_by_kid(api: Api) -> None:
    await api.make_user("eve@example.com")
    header, claims, _ = parts((await api.login("eve@example.com"))["access_token"])
    stranger = Ed25519PrivateKey.generate()
    unknown = jwt.encode(claims, stranger, algorithm="EdDSA", headers={"kid": "k-unknown"})
    await refused(api, unknown, "unknown key")
    wrong_key = jwt.encode(claims, stranger, algorithm="EdDSA", headers={"kid": header["kid"]})
    await refused(api, wrong_key, "signature")
    ring = api.client.app.state.sessions.access.ring
    other_audience = jwt.encode(
        {**claims, "aud": "someone-else"},
        ring.signing_key(),
        algorithm="EdDSA",
        headers={"kid": header["kid"]},
    )
    await refused(api, other_audience, "not for this API")
    no_session = {k: v for k, v in claims.items() if k != "sid"}
    missing = jwt.encode(no_session, ring.signing_key(), algorithm="EdDSA", headers=header)
    await refused(api, missing, "'sid'")


async def test_logout_ends_the_session(api: Api) -> None:
    await api.make_user("ann@example.com")
    pair = await api.login("ann@example.com")
    out = await api.client.post("/api/v1/auth/logout", headers=api.bearer(pair["access_token"]))
    assert out.status_code == 204
    await refused(api, pair["access_token"], "session has ended")
    again = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert again.status_code == 401


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_family(api: Api) -> None:
    await api.make_user("ann@example.com")
    first = await api.login("ann@example.com")
    refresh = api.client.post
    second = (
        await refresh("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    assert second["refresh_token"] != first["refresh_token"]
    third = (
        await refresh("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    ).json()
    assert (await me(api, third["access_token"])).status_code == 200

    # The first refresh token was stolen and is now replayed.
    replay = await refresh("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert "already used" in replay.json()["detail"]
    # The whole family is gone: the newest refresh token and the live access token too.
    newest = await refresh("/api/v1/auth/refresh", json={"refresh_token": third["refresh_token"]})
    assert newest.status_code == 401
    await refused(api, third["access_token"], "session has ended")
    # A fresh login still works.
    assert (await me(api, (await api.login("ann@example.com"))["access_token"])).status_code == 200

    entries = (
        await api.client.get("/api/v1/audit", params={"action": "auth."}, headers=api.admin)
    ).json()
    assert [e["action"] for e in entries].count("auth.refresh_reused") == 1


async def test_two_refreshes_at_once_with_one_token_end_the_session(api: Api) -> None:
    await api.make_user("ann@example.com")
    pair = await api.login("ann@example.com")
    same = {"json": {"refresh_token": pair["refresh_token"]}}
    answers = await api.at_once(
        ("POST", "/api/v1/auth/refresh", same), ("POST", "/api/v1/auth/refresh", same)
    )
    assert sorted(a.status_code for a in answers) == [200, 401], [a.text for a in answers]
    [winner] = [a.json() for a in answers if a.status_code == 200]
    [loser] = [a.json() for a in answers if a.status_code == 401]
    assert "already used" in loser["detail"]
    # The second use is a reuse: the whole family ends, the winner's new tokens included.
    newest = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": winner["refresh_token"]}
    )
    assert newest.status_code == 401
    assert "session has ended" in newest.json()["detail"]
    await refused(api, winner["access_token"], "session has ended")
    await refused(api, pair["access_token"], "session has ended")
    actions = [
        e["action"]
        for e in (
            await api.client.get("/api/v1/audit", params={"action": "auth."}, headers=api.admin)
        ).json()
    ]
    assert actions == ["auth.login", "auth.refresh", "auth.refresh_reused"]


async def test_an_unknown_refresh_token_is_refused(api: Api) -> None:
    answer = await api.client.post("/api/v1/auth/refresh", json={"refresh_token": "tnt_rt_forged"})
    assert answer.status_code == 401
    assert "not valid" in answer.json()["detail"]


async def test_api_tokens_are_bounded_by_scope_tenant_and_owner(api: Api) -> None:
    await api.make_user("ops@example.com")
    alpha = await api.make_tenant("alpha", "ops@example.com", "admin")
    bravo = await api.make_tenant("bravo", "ops@example.com", "admin")
    session = api.bearer((await api.login("ops@example.com"))["access_token"])

    for scopes in ([f"members:admin!tenant={alpha['id']}"], ["users:admin"]):
        beyond = await api.client.post(
            "/api/v1/tokens", json={"name": "x", "scopes": scopes}, headers=session
        )
        assert beyond.status_code == 403, beyond.text
        assert scopes[0].split("!")[0] in beyond.json()["detail"]

    made = await api.client.post(
        "/api/v1/tokens",
        json={"name": "ci", "scopes": [f"tenants:read!tenant={alpha['id']}"]},
        headers=session,
    )
    assert made.status_code == 201, made.text
    token = api.bearer(made.json()["token"])
    assert made.json()["token"] not in str(
        (await api.client.get("/api/v1/tokens", headers=session)).json()
    )

    assert (await api.client.get("/api/v1/tenants/alpha", headers=token)).status_code == 200
    narrower = await api.client.get("/api/v1/tenants/alpha/credentials", headers=token)
    assert narrower.status_code == 403
    assert "credentials:read" in narrower.json()["detail"]
    assert (await api.client.get("/api/v1/tenants/bravo", headers=token)).status_code == 404
    assert bravo["id"]

    # The owner leaves alpha: the token's scope on alpha is worth nothing now.
    user_id = (await me(api, session["Authorization"].split()[1])).json()["id"]
    removed = await api.client.delete(
        f"/api/v1/tenants/{alpha['id']}/members/{user_id}", headers=api.admin
    )
    assert removed.status_code == 204
    assert (await api.client.get("/api/v1/tenants/alpha", headers=token)).status_code == 404

    # Revoked: refused outright.
    revoked = await api.client.delete(f"/api/v1/tokens/{made.json()['id']}", headers=session)
    assert revoked.status_code == 204
    answer = await api.client.get("/api/v1/tenants", headers=token)
    assert answer.status_code == 401
    assert "not valid" in answer.json()["detail"]


async def test_an_expired_api_token_is_refused(api: Api) -> None:
    await api.make_user("ops@example.com")
    await api.make_tenant("alpha", "ops@example.com", "member")
    session = api.bearer((await api.login("ops@example.com"))["access_token"])
    made = await api.client.post(
        "/api/v1/tokens",
        json={"name": "short", "scopes": ["tenants:read"], "expires_in_days": 1},
        headers=session,
    )
    token = api.bearer(made.json()["token"])
    assert (await api.client.get("/api/v1/tenants", headers=token)).status_code == 200
    api.clock.advance(86400 + 1)
    answer = await api.client.get("/api/v1/tenants", headers=token)
    assert answer.status_code == 401
    assert "expired" in answer.json()["detail"]
