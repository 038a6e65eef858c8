"""The cross-tenant matrix, generated from the app's route table: for every route that names
a tenant, tenant A's owner, admin and member, and an API token narrowed to A, try tenant B's
resources. All are refused with the same 404 a tenant that does not exist gets (no existence
oracle), and B is unchanged afterwards. Within A, each role is refused (403) exactly the
routes whose scope its role lacks. A new route is covered without touching this file."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from control_plane.api.authz import AUTHENTICATED, PUBLIC, SCOPE, TENANT_PARAM
from control_plane.app import create_app
from control_plane.identity.scopes import PLATFORM_SCOPES, ROLE_SCOPES, SCOPES, Role
from control_plane.settings import load_settings

PASSWORD = "correct horse battery staple"
_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    scope: str


def tenant_endpoints(app: Any) -> list[Endpoint]:
    found = []
    for route in app.routes:
        if f"{{{TENANT_PARAM}" not in route.path:
            continue
        for handler in getattr(route, "route_handlers", []):
            scope = handler.opt.get(SCOPE)
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                found.append(Endpoint(method, route.path, scope))
    return found


def fill(path: str, tenant_ref: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == TENANT_PARAM:
            return tenant_ref
        return "openai" if name == "provider" else str(uuid.uuid4())

    return _PARAM.sub(value, path)


@dataclass
class World:
    client: AsyncTestClient
    admin: dict[str, str]
    tenant_a: dict[str, Any]
    tenant_b: dict[str, Any]
    callers: dict[str, dict[str, str]]
    """Headers of A's owner, admin, member and of a token narrowed to A."""


async def make_user(client: AsyncTestClient, admin: dict[str, str], email: str) -> None:
    made = await client.post(
        "/api/v1/users", json={"email": email, "password": PASSWORD}, headers=admin
    )
    assert made.status_code == 201, made.text


async def login(client: AsyncTestClient, email: str) -> dict[str, str]:
    answer = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    settings = load_settings(
        {"TENANTRY_DATABASE_URL": database_url}, data_dir=str(tmp_path / "data")
    )
    tokens: list[str] = []
    app = create_app(settings, on_first_token=tokens.append, reconcile=False)
    async with AsyncTestClient(app=app) as client:
        admin = {"Authorization": f"Bearer {tokens[0]}"}
        tenants = {}
        for slug in ("alpha", "bravo"):
            made = await client.post("/api/v1/tenants", json={"slug": slug}, headers=admin)
            tenants[slug] = made.json()
        callers: dict[str, dict[str, str]] = {}
        for role in Role:
            email = f"{role}@alpha.example"
            await make_user(client, admin, email)
            added = await client.post(
                f"/api/v1/tenants/{tenants['alpha']['id']}/members",
                json={"email": email, "role": str(role)},
                headers=admin,
            )
            assert added.status_code == 201, added.text
            callers[str(role)] = await login(client, email)
        await make_user(client, admin, "owner@bravo.example")
        await client.post(
            f"/api/v1/tenants/{tenants['bravo']['id']}/members",
            json={"email": "owner@bravo.example", "role": "owner"},
            headers=admin,
        )
        narrowed = [
            f"{scope}!tenant={tenants['alpha']['id']}"
            for scope in SCOPES
            if scope not in PLATFORM_SCOPES
        ]
        token = await client.post(
            "/api/v1/tokens",
            json={"name": "automation", "scopes": narrowed},
            headers=callers["owner"],
        )
        assert token.status_code == 201, token.text
        callers["token"] = {"Authorization": f"Bearer {token.json()['token']}"}
        yield World(client, admin, tenants["alpha"], tenants["bravo"], callers)


async def snapshot(world: World) -> dict[str, Any]:
    """What an admin sees of tenant B (to show nothing changed)."""
    ref = world.tenant_b["id"]
    views = {}
    for part in ("", "/gateway-keys", "/credentials", "/members", "/invitations"):
        answer = await world.client.get(f"/api/v1/tenants/{ref}{part}", headers=world.admin)
        views[part] = answer.json()
    views[""].pop("updated_at", None)
    return views


async def test_nobody_of_tenant_a_reaches_tenant_b(world: World) -> None:
    endpoints = tenant_endpoints(world.client.app)
    assert len(endpoints) >= 15, "the route table is where the matrix comes from"
    before = await snapshot(world)
    leaks = []
    for caller, headers in world.callers.items():
        for endpoint in endpoints:
            for ref in (world.tenant_b["id"], world.tenant_b["slug"]):
                answer = await world.client.request(
                    endpoint.method, fill(endpoint.path, ref), headers=headers, json={}
                )
                ghost_ref = str(uuid.uuid4()) if ref == world.tenant_b["id"] else "no-such-slug"
                ghost = await world.client.request(
                    endpoint.method, fill(endpoint.path, ghost_ref), headers=headers, json={}
                )
                same = answer.status_code == ghost.status_code == 404 and answer.json()[
                    "detail"
                ].replace(ref, "X") == ghost.json()["detail"].replace(ghost_ref, "X")
                if not same:
                    leaks.append(
                        f"{caller} {endpoint.method} {endpoint.path} [{ref}]: "
                        f"{answer.status_code} {answer.text[:120]}"
                    )
    assert leaks == []
    assert await snapshot(world) == before, "tenant B is unchanged"


async def test_within_tenant_a_each_role_lacks_exactly_what_its_role_lacks(world: World) -> None:
    wrong = []
    for role in Role:
        headers = world.callers[str(role)]
        for endpoint in tenant_endpoints(world.client.app):
            if endpoint.scope in (AUTHENTICATED, PUBLIC):
                continue
            allowed = endpoint.scope in ROLE_SCOPES[role]
            if allowed:
                continue  # exercised with real bodies by the routes' own suites
            answer = await world.client.request(
                endpoint.method,
                fill(endpoint.path, world.tenant_a["slug"]),
                headers=headers,
                json={},
            )
            if answer.status_code != 403 or endpoint.scope not in answer.json()["detail"]:
                wrong.append(f"{role} {endpoint.method} {endpoint.path}: {answer.status_code}")
    assert wrong == []


async def test_lists_show_only_ones_own_tenants(world: World) -> None:
    for caller in ("member", "token"):
        listed = await world.client.get("/api/v1/tenants", headers=world.callers[caller])
        assert [t["slug"] for t in listed.json()["items"]] == ["alpha"]
    everything = await world.client.get("/api/v1/tenants", headers=world.admin)
    assert [t["slug"] for t in everything.json()["items"]] == ["alpha", "bravo"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/tenants", {"slug": "charlie"}),
        ("GET", "/api/v1/audit", None),
        ("POST", "/api/v1/users", {"email": "eve@example.com", "password": PASSWORD}),
    ],
)
async def test_installation_wide_routes_are_for_platform_admins(
    world: World, method: str, path: str, body: dict[str, Any] | None
) -> None:
    for caller, headers in world.callers.items():
        answer = await world.client.request(method, path, headers=headers, json=body)
        assert answer.status_code == 403, f"{caller}: {answer.status_code} {answer.text}"


async def test_refusals_are_audited_as_denied(world: World) -> None:
    refused = await world.client.put(
        f"/api/v1/tenants/{world.tenant_a['id']}/credentials/openai",
        json={"api_key": "sk-denied"},
        headers=world.callers["member"],
    )
    assert refused.status_code == 403
    entries = (
        await world.client.get(
            f"/api/v1/tenants/{world.tenant_a['id']}/audit",
            params={"outcome": "denied"},
            headers=world.admin,
        )
    ).json()
    assert [e["detail"]["missing_scope"] for e in entries] == ["credentials:write"]
    assert entries[0]["actor_type"] == "user"
