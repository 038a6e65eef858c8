"""The control plane in-process with its real reconciler and local runtime: every tenant
gets a real gateway child process, on SQLite and on PostgreSQL (as the application role,
under row-level security)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from control_plane.app import create_app
from control_plane.runtime.local import LocalRuntime
from control_plane.runtime.local.processes import gateway_pids, pid_alive, read_state
from control_plane.settings import Settings, load_settings
from tests.waiting import eventually

ControlPlaneFactory = Callable[..., Any]


def make_settings(database_env: dict[str, str], data_dir: Path, **env: str) -> Settings:
    base = {
        **database_env,
        "TENANTRY_RESYNC_INTERVAL": "0.5",
        "TENANTRY_LOCAL_READY_TIMEOUT": "30",
        "TENANTRY_LOCAL_STOP_TIMEOUT": "5",
    }
    return load_settings({**base, **env}, data_dir=str(data_dir))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def control_plane(database_env: dict[str, str], data_dir: Path) -> ControlPlaneFactory:
    """``async with control_plane(**env) as client``: a running control plane."""

    @asynccontextmanager
    async def start(
        gateway_command: list[str] | None = None, **env: str
    ) -> AsyncIterator[AsyncTestClient]:
        settings = make_settings(database_env, data_dir, **env)
        runtime = LocalRuntime(settings, gateway_command=gateway_command)
        app = create_app(settings, runtime=runtime)
        async with AsyncTestClient(app=app, timeout=60) as client:
            token = (data_dir / "admin-token").read_text().strip()
            client.headers["Authorization"] = f"Bearer {token}"
            yield client

    return start


@pytest.fixture(autouse=True)
def no_gateway_outlives_its_test(data_dir: Path) -> AsyncIterator[None]:
    """Whatever a test does, it must leave no gateway process behind."""
    yield
    gateways = data_dir / "gateways"
    leftovers = []
    if gateways.exists():
        for runtime_dir in gateways.iterdir():
            for pid in gateway_pids(runtime_dir):
                leftovers.append(pid)
                os.kill(pid, 9)
    assert not leftovers, f"gateway processes left running: {leftovers}"


async def wait_state(
    client: AsyncTestClient,
    tenant: str,
    state: str,
    timeout: float = 60.0,
    *,
    tolerate_failed: bool = False,
) -> dict[str, Any]:
    seen: list[str] = []

    async def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/api/v1/tenants/{tenant}")).json()
        if body["state"] == "failed" and state != "failed" and not tolerate_failed:
            raise AssertionError(f"tenant failed: {body['reason']}")
        if not seen or seen[-1] != body["state"]:
            seen.append(body["state"])
        return body if body["state"] == state else None

    try:
        return await eventually(probe, timeout=timeout, what=f"tenant {tenant} {state}")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out} (states seen: {' -> '.join(seen)})") from None


async def event_types(client: AsyncTestClient, tenant: str) -> list[str]:
    events = (await client.get(f"/api/v1/tenants/{tenant}/events")).json()
    return [e["type"] for e in events]


async def readiness(endpoint: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{endpoint}/readyz")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def gateway_pid(data_dir: Path, tenant_id: str) -> int:
    state = read_state(data_dir / "gateways" / tenant_id)
    assert state is not None, "a running gateway reports its state"
    assert pid_alive(state.pid)
    return state.pid


def live_gateway_pids(data_dir: Path, tenant_id: str) -> list[int]:
    return gateway_pids(data_dir / "gateways" / tenant_id)
