"""The cross-tenant matrix for the routes that name no tenant in their path (accounts,
tokens, invitations, the audit log, the model catalog, the gateways' internal endpoints,
operations): tenant A's owner, admin, member and an API token narrowed to A each try them,
aimed at tenant B where they can be. Each refuses what it must (401/403/404), an answer about
something of B reads exactly like one about something that does not exist, no answer holds
anything of B (ids, people, tokens, the invitation, the gateway key), and B is unchanged.

Every route of the app's table is in one matrix or the other: the routes with
``{tenant_ref}`` are generated in ``test_cross_tenant``; every other route must have a probe
in :data:`PROBES`, and a new one fails ``test_every_route_is_in_a_matrix`` until it has.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from control_plane.api.authz import TENANT_PARAM
from control_plane.app import create_app
from control_plane.settings import load_settings
from tests.integration.api.conftest import PASSWORD, World, snapshot

Probe = Callable[[World, str, dict[str, str]], Awaitable[None]]
"""Tries a route as one caller of A (name, headers); fails with what went wrong."""

OPENAPI_PREFIX = "/schema"
"""Litestar's OpenAPI documents and viewers: public, built from the route table alone."""

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route of ``app``, as its route table spells the path."""
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                found.append((method, route.path))
    return found


def expect(answer: httpx.Response, *statuses: int) -> None:
    assert answer.status_code in statuses, f"{answer.status_code} {answer.text[:200]}"


def reveals_nothing_of_b(world: World, answer: httpx.Response, *sent: str) -> None:
    """No value of B is in ``answer``, except those the caller sent itself."""
    found = [
        name
        for name, value in world.b.markers().items()
        if value in answer.text and value not in sent
    ]
    assert not found, f"the answer holds {', '.join(found)}: {answer.text[:200]}"


async def like_a_stranger(
    world: World, send: Callable[[str], Awaitable[httpx.Response]], b_value: str, ghost: str
) -> httpx.Response:
    """Send with B's value and with a made-up one: both answers must read the same."""
    real, made_up = await send(b_value), await send(ghost)
    assert real.status_code == made_up.status_code, f"{real.text} / {made_up.text}"
    assert real.json()["detail"].replace(b_value, "X") == made_up.json()["detail"].replace(
        ghost, "X"
    ), f"{real.text} / {made_up.text}"
    reveals_nothing_of_b(world, real, b_value)
    return real


# -- accounts and sessions -----------------------------------------------------------------


async def log_in_as_b_s_owner(world: World, _caller: str, headers: dict[str, str]) -> None:
    async def send(email: str) -> httpx.Response:
        body = {"email": email, "password": "a guess, not the password"}
        return await world.client.post("/api/v1/auth/login", json=body, headers=headers)

    answer = await like_a_stranger(world, send, "owner@bravo.example", "nobody@bravo.example")
    expect(answer, 401)


async def refresh_with_what_a_holds(world: World, _caller: str, headers: dict[str, str]) -> None:
    held = headers["Authorization"].removeprefix("Bearer ")
    answer = await world.client.post("/api/v1/auth/refresh", json={"refresh_token": held})
    expect(answer, 401)
    reveals_nothing_of_b(world, answer)


async def log_out(world: World, caller: str, headers: dict[str, str]) -> None:
    answer = await world.client.post("/api/v1/auth/logout", headers=headers)
    expect(answer, 403 if caller == "token" else 204)
    reveals_nothing_of_b(world, answer)
    expect(await world.client.get("/api/v1/users/me", headers=world.b.owner), 200)


async def create_a_user(world: World, _caller: str, headers: dict[str, str]) -> None:
    body = {"email": "intruder@bravo.example", "password": PASSWORD, "platform_admin": True}
    answer = await world.client.post("/api/v1/users", json=body, headers=headers)
    expect(answer, 403)
    reveals_nothing_of_b(world, answer)


async def look_at_oneself(world: World, _caller: str, headers: dict[str, str]) -> None:
    answer = await world.client.get("/api/v1/users/me", headers=headers)
    expect(answer, 200)
    reveals_nothing_of_b(world, answer)
    assert [m["tenant_id"] for m in answer.json()["memberships"]] == [world.tenant_a["id"]]


# -- API tokens ----------------------------------------------------------------------------


async def make_a_token_for_b(world: World, caller: str, headers: dict[str, str]) -> None:
    async def send(tenant_id: str) -> httpx.Response:
        body = {"name": "into b", "scopes": [f"tenants:read!tenant={tenant_id}"]}
        return await world.client.post("/api/v1/tokens", json=body, headers=headers)

    answer = await like_a_stranger(world, send, world.tenant_b["id"], str(uuid.uuid4()))
    expect(answer, 403)


async def list_tokens(world: World, _caller: str, headers: dict[str, str]) -> None:
    answer = await world.client.get("/api/v1/tokens", headers=headers)
    expect(answer, 200)
    reveals_nothing_of_b(world, answer)


async def revoke_b_s_token(world: World, _caller: str, headers: dict[str, str]) -> None:
    async def send(token_id: str) -> httpx.Response:
        return await world.client.delete(f"/api/v1/tokens/{token_id}", headers=headers)

    answer = await like_a_stranger(world, send, world.b.token_id, str(uuid.uuid4()))
    expect(answer, 404)
    still = await world.client.get(f"/api/v1/tenants/{world.tenant_b['id']}", headers=world.b.token)
    expect(still, 200)


# -- tenants and invitations ---------------------------------------------------------------


async def create_a_tenant(world: World, _caller: str, headers: dict[str, str]) -> None:
    answer = await world.client.post("/api/v1/tenants", json={"slug": "charlie"}, headers=headers)
    expect(answer, 403)
    reveals_nothing_of_b(world, answer)


async def list_tenants(world: World, _caller: str, headers: dict[str, str]) -> None:
    answer = await world.client.get("/api/v1/tenants", headers=headers)
    expect(answer, 200)
    reveals_nothing_of_b(world, answer)
    assert [t["id"] for t in answer.json()["items"]] == [world.tenant_a["id"]]


async def accept_b_s_invitation(world: World, _caller: str, headers: dict[str, str]) -> None:
    token = world.b.invitation["token"]
    answer = await world.client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=headers
    )
    expect(answer, 403)
    reveals_nothing_of_b(world, answer, token)


async def read_the_audit_log(world: World, _caller: str, headers: dict[str, str]) -> None:
    for params in ({}, {"tenant": world.tenant_b["id"]}):
        answer = await world.client.get("/api/v1/audit", params=params, headers=headers)
        expect(answer, 403)
        reveals_nothing_of_b(world, answer)


# -- the platform's model catalog ------------------------------------------------------------


def platform_only(method: str, path: str, body: dict[str, Any] | None = None) -> Probe:
    """A route for platform admins only: refused to every caller of a tenant."""

    async def probe(world: World, _caller: str, headers: dict[str, str]) -> None:
        answer = await world.client.request(method, path, json=body, headers=headers)
        expect(answer, 403)
        reveals_nothing_of_b(world, answer)

    return probe


MODEL = {"name": "stolen-model", "base_url": "http://127.0.0.1:9/v1"}

# -- the gateways' internal endpoints and operations ---------------------------------------


def gateway_only(action: str) -> Probe:
    """A gateway's endpoint for its own tenant, guarded by its identity token: a person's
    or an API token's credential gets nothing of B through it."""

    async def probe(world: World, _caller: str, headers: dict[str, str]) -> None:
        path = f"/internal/v1/gateways/{world.tenant_b['id']}/{action}"
        answer = await world.client.post(path, json={"events": []}, headers=headers)
        expect(answer, 401, 403, 404)
        assert "data_keys" not in answer.text
        reveals_nothing_of_b(world, answer, world.tenant_b["id"])

    return probe


def relay_to_b(method: str) -> Probe:
    """The public webhook relay takes no admin credential and passes nothing on but the
    call itself: B's gateway is not running here, so it answers 503 and shows nothing of B."""

    async def probe(world: World, _caller: str, headers: dict[str, str]) -> None:
        path = f"/webhooks/whatsapp/{world.tenant_b['id']}"
        answer = await world.client.request(method, path, headers=headers, content=b"{}")
        expect(answer, 503)
        assert answer.headers["retry-after"]
        reveals_nothing_of_b(world, answer, world.tenant_b["id"])
        # Telegram's calls carry the secret registered for B's bot: without it, refused here.
        path = f"/webhooks/telegram/{world.tenant_b['id']}"
        answer = await world.client.request(method, path, headers=headers, content=b"{}")
        expect(answer, 401)
        reveals_nothing_of_b(world, answer, world.tenant_b["id"])
        unknown = await world.client.request(method, "/webhooks/smoke-signals/x", headers=headers)
        expect(unknown, 404)

    return probe


async def platform_bot_webhook(world: World, _caller: str, headers: dict[str, str]) -> None:
    """No platform bot runs here: its webhook does not exist, whoever calls."""
    update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "text": "hi"}}
    answer = await world.client.post("/webhooks/telegram-platform", json=update, headers=headers)
    expect(answer, 404)
    reveals_nothing_of_b(world, answer)


def public(path: str) -> Probe:
    async def probe(world: World, _caller: str, headers: dict[str, str]) -> None:
        answer = await world.client.get(path, headers=headers)
        assert answer.status_code < 500, answer.text[:200]
        reveals_nothing_of_b(world, answer)

    return probe


PROBES: dict[tuple[str, str], Probe] = {
    ("POST", "/api/v1/auth/login"): log_in_as_b_s_owner,
    ("POST", "/api/v1/auth/refresh"): refresh_with_what_a_holds,
    ("POST", "/api/v1/users"): create_a_user,
    ("GET", "/api/v1/users/me"): look_at_oneself,
    ("POST", "/api/v1/tokens"): make_a_token_for_b,
    ("GET", "/api/v1/tokens"): list_tokens,
    ("DELETE", "/api/v1/tokens/{token_id:str}"): revoke_b_s_token,
    ("POST", "/api/v1/tenants"): create_a_tenant,
    ("GET", "/api/v1/tenants"): list_tenants,
    ("POST", "/api/v1/invitations/accept"): accept_b_s_invitation,
    ("GET", "/api/v1/audit"): read_the_audit_log,
    ("GET", "/api/v1/models"): platform_only("GET", "/api/v1/models"),
    ("POST", "/api/v1/models"): platform_only("POST", "/api/v1/models", MODEL),
    ("GET", "/api/v1/models/{model_ref:str}"): platform_only("GET", "/api/v1/models/m"),
    ("PATCH", "/api/v1/models/{model_ref:str}"): platform_only(
        "PATCH", "/api/v1/models/m", {"enabled": False}
    ),
    ("DELETE", "/api/v1/models/{model_ref:str}"): platform_only("DELETE", "/api/v1/models/m"),
    ("POST", "/internal/v1/gateways/{gateway_tenant:str}/unseal"): gateway_only("unseal"),
    ("POST", "/internal/v1/gateways/{gateway_tenant:str}/usage"): gateway_only("usage"),
    ("POST", "/internal/v1/gateways/{gateway_tenant:str}/replies"): gateway_only("replies"),
    ("POST", "/internal/v1/gateways/{gateway_tenant:str}/typing"): gateway_only("typing"),
    ("POST", "/webhooks/telegram-platform"): platform_bot_webhook,
    ("GET", "/webhooks/{channel:str}/{tenant:str}"): relay_to_b("GET"),
    ("POST", "/webhooks/{channel:str}/{tenant:str}"): relay_to_b("POST"),
    ("GET", "/healthz"): public("/healthz"),
    ("GET", "/readyz"): public("/readyz"),
    ("GET", "/metrics"): public("/metrics"),
    # Last: it ends the callers' own sessions.
    ("POST", "/api/v1/auth/logout"): log_out,
}
"""Every route outside a tenant, with what a caller of tenant A tries there."""


def openapi_probe(path: str) -> Probe:
    return public(_PARAM.sub("openapi.json", path))


def test_every_route_is_in_a_matrix(tmp_path: Path) -> None:
    app = create_app(load_settings({}, data_dir=str(tmp_path / "data")), reconcile=False)
    table = routes(app)
    outside = [
        route
        for route in table
        if f"{{{TENANT_PARAM}" not in route[1] and not route[1].startswith(OPENAPI_PREFIX)
    ]
    unclassified = [f"{method} {path}" for method, path in outside if (method, path) not in PROBES]
    assert unclassified == [], "give each a probe in PROBES"
    stale = [f"{method} {path}" for method, path in PROBES if (method, path) not in table]
    assert stale == [], "these routes are gone"


async def test_routes_outside_a_tenant_refuse_and_reveal_nothing(world: World) -> None:
    before = await snapshot(world)
    openapi = [
        (method, path, openapi_probe(path))
        for method, path in routes(world.client.app)
        if path.startswith(OPENAPI_PREFIX)
    ]
    tried = [*openapi, *((method, path, probe) for (method, path), probe in PROBES.items())]
    failures = []
    for method, path, probe in tried:
        for caller, headers in world.callers.items():
            try:
                await probe(world, caller, headers)
            except AssertionError as exc:
                failures.append(f"{caller} {method} {path}: {exc}")
    assert failures == []
    assert await snapshot(world) == before, "tenant B is unchanged"
