"""Every route of the API says what it needs, and a route that forgets is refused."""

from __future__ import annotations

from pathlib import Path

from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from control_plane.api.authz import AUTHENTICATED, PUBLIC, SCOPE, authorize
from control_plane.app import create_app
from control_plane.identity.scopes import SCOPES
from control_plane.settings import load_settings


def app_routes(tmp_path: Path) -> Litestar:
    settings = load_settings({}, data_dir=str(tmp_path / "data"))
    return create_app(settings, reconcile=False)


def test_every_api_route_declares_a_known_scope(tmp_path: Path) -> None:
    app = app_routes(tmp_path)
    undeclared = []
    for route in app.routes:
        if not route.path.startswith("/api/"):
            continue
        for handler in getattr(route, "route_handlers", []):
            if handler.http_methods == {"OPTIONS"}:
                continue  # Litestar's own answer listing the allowed methods
            need = handler.opt.get(SCOPE)
            if need not in {*SCOPES, AUTHENTICATED, PUBLIC}:
                undeclared.append(f"{route.path} {handler.handler_name}: {need!r}")
    assert undeclared == []


async def test_a_route_without_a_scope_is_refused_not_opened() -> None:
    @get("/api/v1/forgotten", sync_to_thread=False)
    def forgotten() -> str:
        return "should not be reachable"

    app = Litestar([forgotten], guards=[authorize])
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/api/v1/forgotten")
    assert response.status_code == 500
    assert "should not be reachable" not in response.text


async def test_options_answers_only_the_allowed_methods(tmp_path: Path) -> None:
    async with AsyncTestClient(app=app_routes(tmp_path)) as client:
        response = await client.options("/api/v1/tenants")
    assert response.status_code == 204
    assert "POST" in response.headers["allow"]
