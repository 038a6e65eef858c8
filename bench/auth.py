"""``python -m bench.auth``: what authentication and authorization add to an API request.

The control plane in-process (SQLite in a temp dir, reconciler off), one tenant with an
owner. ``GET /api/v1/tenants/{id}`` is timed sequentially with each kind of credential — the
admin token, a user's JWT access token, and a user's API token narrowed to the tenant — and,
as the baseline in the same run, ``GET /healthz``, which passes no guard and reads nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from bench.stats import summary
from control_plane.app import create_app
from control_plane.settings import load_settings

REQUESTS = 300
PASSWORD = "benchmark password 0001"


async def _time(client: AsyncTestClient, path: str, headers: dict[str, str]) -> dict[str, float]:
    for _ in range(20):  # warm-up
        await client.get(path, headers=headers)
    samples = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        answer = await client.get(path, headers=headers)
        samples.append(time.perf_counter() - started)
        if answer.status_code != 200:
            raise RuntimeError(f"{path}: {answer.status_code} {answer.text}")
    return summary(samples)


async def _measure(root: Path) -> dict[str, dict[str, float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
    settings = load_settings(env, data_dir=str(root))
    logging.getLogger("control_plane").setLevel(logging.ERROR)  # generated-key warnings
    tokens: list[str] = []
    app = create_app(settings, on_first_token=tokens.append, reconcile=False)
    async with AsyncTestClient(app=app) as client:
        admin = {"Authorization": f"Bearer {tokens[0]}"}
        tenant: dict[str, Any] = (
            await client.post("/api/v1/tenants", json={"slug": "bench"}, headers=admin)
        ).json()
        await client.post(
            "/api/v1/users", json={"email": "o@bench.example", "password": PASSWORD}, headers=admin
        )
        await client.post(
            f"/api/v1/tenants/{tenant['id']}/members",
            json={"email": "o@bench.example", "role": "owner"},
            headers=admin,
        )
        login = await client.post(
            "/api/v1/auth/login", json={"email": "o@bench.example", "password": PASSWORD}
        )
        jwt = {"Authorization": f"Bearer {login.json()['access_token']}"}
        made = await client.post(
            "/api/v1/tokens",
            json={"name": "bench", "scopes": [f"tenants:read!tenant={tenant['id']}"]},
            headers=jwt,
        )
        api_token = {"Authorization": f"Bearer {made.json()['token']}"}
        path = f"/api/v1/tenants/{tenant['id']}"
        return {
            "baseline": await _time(client, "/healthz", {}),
            "admin token": await _time(client, path, admin),
            "JWT access token": await _time(client, path, jwt),
            "API token (narrowed)": await _time(client, path, api_token),
        }


def run() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-auth-") as root:
        figures = asyncio.run(_measure(Path(root)))
    base = figures.pop("baseline")
    lines = [
        "| figure | p50 | p95 | baseline in the same run: `GET /healthz` (no guard) "
        "| added (p50) |",
        "|---|---|---|---|---|",
    ]
    for name, figure in figures.items():
        lines.append(
            f"| `GET /api/v1/tenants/{{id}}` with {name} ({REQUESTS} sequential, SQLite) "
            f"| {figure['p50'] * 1000:.2f} ms | {figure['p95'] * 1000:.2f} ms "
            f"| {base['p50'] * 1000:.2f} ms | +{(figure['p50'] - base['p50']) * 1000:.2f} ms |"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
