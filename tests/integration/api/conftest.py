"""The control plane app in-process, on SQLite and PostgreSQL, with its reconciler off:
these tests pin the HTTP contract; the reconciler has suites of its own. On PostgreSQL the
app connects as the application role (row-level security binds it; the owner migrates).

* ``client``: the app with the first admin token in its headers;
* ``world``: two tenants, ``alpha`` and ``bravo``, with alpha's owner, admin, member and an
  API token narrowed to alpha as the callers, and bravo holding things worth stealing (its
  owner's session and API token, an open invitation, a gateway key) — the cross-tenant
  matrices try the one against the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from control_plane.app import create_app
from control_plane.identity.scopes import PLATFORM_SCOPES, SCOPES, Role
from control_plane.settings import load_settings

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def client(database_env: dict[str, str], tmp_path: Path) -> AsyncIterator[AsyncTestClient]:
    settings = load_settings(database_env, data_dir=str(tmp_path / "data"))
    tokens: list[str] = []
    app = create_app(settings, on_first_token=tokens.append, reconcile=False)
    async with AsyncTestClient(app=app) as test_client:
        assert len(tokens) == 1, "a fresh installation makes exactly one first admin token"
        test_client.headers["Authorization"] = f"Bearer {tokens[0]}"
        yield test_client


@dataclass
class TenantB:
    """What tenant B has that a caller of tenant A must never reach or learn."""

    tenant: dict[str, Any]
    owner: dict[str, str]
    """Headers of B's owner's session."""
    owner_id: str
    token_id: str
    token: dict[str, str]
    """Headers of an API token of B's owner, narrowed to B."""
    invitation: dict[str, Any]
    """An open invitation to B (with its token), for ``guest@bravo.example``."""
    gateway_key: str

    def markers(self) -> dict[str, str]:
        """Values of B that no answer to a caller of A may contain."""
        return {
            "B's id": self.tenant["id"],
            "B's slug": self.tenant["slug"],
            "B's owner's id": self.owner_id,
            "B's owner's email": "owner@bravo.example",
            "B's API token id": self.token_id,
            "B's API token": self.token["Authorization"].removeprefix("Bearer "),
            "B's invitation id": self.invitation["id"],
            "B's invitation token": self.invitation["token"],
            "B's guest's email": "guest@bravo.example",
            "B's gateway key": self.gateway_key,
        }


@dataclass
class World:
    client: AsyncTestClient
    admin: dict[str, str]
    tenant_a: dict[str, Any]
    tenant_b: dict[str, Any]
    callers: dict[str, dict[str, str]]
    """Headers of A's owner, admin, member and of a token narrowed to A."""
    b: TenantB


async def snapshot(world: World) -> dict[str, Any]:
    """What an admin sees of tenant B, and B's owner of their tokens (to show nothing
    changed)."""
    ref = world.tenant_b["id"]
    views: dict[str, Any] = {}
    for part in ("", "/gateway-keys", "/credentials", "/members", "/invitations"):
        answer = await world.client.get(f"/api/v1/tenants/{ref}{part}", headers=world.admin)
        views[part] = answer.json()
    views[""].pop("updated_at", None)
    tokens = await world.client.get("/api/v1/tokens", headers=world.b.owner)
    views["tokens"] = [(t["id"], t["scopes"], t["revoked_at"]) for t in tokens.json()]
    return views


async def make_user(client: AsyncTestClient, admin: dict[str, str], email: str) -> str:
    made = await client.post(
        "/api/v1/users", json={"email": email, "password": PASSWORD}, headers=admin
    )
    assert made.status_code == 201, made.text
    user_id: str = made.json()["id"]
    return user_id


async def login(client: AsyncTestClient, email: str) -> dict[str, str]:
    answer = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def join(
    client: AsyncTestClient, admin: dict[str, str], tenant: dict[str, Any], email: str, role: str
) -> None:
    added = await client.post(
        f"/api/v1/tenants/{tenant['id']}/members",
        json={"email": email, "role": role},
        headers=admin,
    )
    assert added.status_code == 201, added.text


async def api_token(
    client: AsyncTestClient, headers: dict[str, str], scopes: list[str]
) -> dict[str, Any]:
    made = await client.post(
        "/api/v1/tokens", json={"name": "automation", "scopes": scopes}, headers=headers
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def tenant_b(
    client: AsyncTestClient, admin: dict[str, str], tenant: dict[str, Any]
) -> TenantB:
    owner_id = await make_user(client, admin, "owner@bravo.example")
    await join(client, admin, tenant, "owner@bravo.example", "owner")
    owner = await login(client, "owner@bravo.example")
    token = await api_token(client, owner, [f"tenants:read!tenant={tenant['id']}"])
    invitation = await client.post(
        f"/api/v1/tenants/{tenant['id']}/invitations",
        json={"email": "guest@bravo.example"},
        headers=admin,
    )
    assert invitation.status_code == 201, invitation.text
    return TenantB(
        tenant=tenant,
        owner=owner,
        owner_id=owner_id,
        token_id=token["id"],
        token={"Authorization": f"Bearer {token['token']}"},
        invitation=invitation.json(),
        gateway_key=tenant["gateway_key"]["key"],
    )


@pytest.fixture
async def world(database_env: dict[str, str], tmp_path: Path) -> AsyncIterator[World]:
    settings = load_settings(database_env, data_dir=str(tmp_path / "data"))
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
            await join(client, admin, tenants["alpha"], email, str(role))
            callers[str(role)] = await login(client, email)
        narrowed = [
            f"{scope}!tenant={tenants['alpha']['id']}"
            for scope in SCOPES
            if scope not in PLATFORM_SCOPES
        ]
        token = await api_token(client, callers["owner"], narrowed)
        callers["token"] = {"Authorization": f"Bearer {token['token']}"}
        b = await tenant_b(client, admin, tenants["bravo"])
        yield World(client, admin, tenants["alpha"], tenants["bravo"], callers, b)
