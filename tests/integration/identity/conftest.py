"""The control plane in-process with a controllable clock, for login and token tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from control_plane.app import create_app
from control_plane.settings import load_settings
from tests.at_once import Request, send_at_once

PASSWORD = "correct horse battery staple"


@dataclass
class Clock:
    """Now, as the identity services see it; tests move it instead of waiting."""

    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@dataclass
class Api:
    client: AsyncTestClient[Litestar]
    admin: dict[str, str]
    clock: Clock

    async def make_user(self, email: str, **extra: Any) -> dict[str, Any]:
        made = await self.client.post(
            "/api/v1/users",
            json={"email": email, "password": PASSWORD, **extra},
            headers=self.admin,
        )
        assert made.status_code == 201, made.text
        body: dict[str, Any] = made.json()
        return body

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        answer = await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def at_once(self, *requests: Request) -> list[httpx.Response]:
        """Send ``requests`` so that they are all in flight together."""
        return await send_at_once(self.client, *requests)

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def make_tenant(self, slug: str, email: str, role: str) -> dict[str, Any]:
        """A tenant (made by the platform admin) with ``email`` as a member in ``role``."""
        made = await self.client.post("/api/v1/tenants", json={"slug": slug}, headers=self.admin)
        assert made.status_code == 202, made.text
        tenant: dict[str, Any] = made.json()
        added = await self.client.post(
            f"/api/v1/tenants/{tenant['id']}/members",
            json={"email": email, "role": role},
            headers=self.admin,
        )
        assert added.status_code == 201, added.text
        return tenant


def use_clock(app: Any, clock: Clock) -> None:
    """Point every identity service of ``app`` at ``clock``."""
    state = app.state
    for name in ("users", "sessions", "api_tokens", "members", "authenticator"):
        state[name].now = clock
    state["sessions"].access.now = clock


async def open_api(
    database_url: str, tmp_path: Path, env: dict[str, str] | None = None
) -> AsyncIterator[Api]:
    settings = load_settings(
        {"TENANTRY_DATABASE_URL": database_url, **(env or {})}, data_dir=str(tmp_path / "data")
    )
    tokens: list[str] = []
    app = create_app(settings, on_first_token=tokens.append, reconcile=False)
    clock = Clock()
    use_clock(app, clock)
    async with AsyncTestClient(app=app) as client:
        yield Api(client, {"Authorization": f"Bearer {tokens[0]}"}, clock)


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    async for opened in open_api(database_url, tmp_path):
        yield opened
