"""The cross-tenant matrix, generated from the app's route table: for every route that names
a tenant, tenant A's owner, admin and member, and an API token narrowed to A, try tenant B's
resources. All are refused with the same 404 a tenant that does not exist gets (no existence
oracle), and B is unchanged afterwards. Within A, each role is refused (403) exactly the
routes whose scope its role lacks. A new route naming a tenant is covered without touching
this file; the routes that name none are tried in ``test_outside_tenants``."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from control_plane.api.authz import AUTHENTICATED, PUBLIC, SCOPE, TENANT_PARAM
from control_plane.identity.scopes import ROLE_SCOPES, Role
from tests.integration.api.conftest import World, snapshot

_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")


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
        if match.group(2) == "int":
            return "4242"
        return "openai" if name == "provider" else str(uuid.uuid4())

    return _PARAM.sub(value, path)


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
                held = [n for n, v in world.b.markers().items() if v in answer.text and v != ref]
                if not same or held:
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
