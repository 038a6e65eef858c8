"""The gateway's meter against a real control plane over HTTP, on SQLite and PostgreSQL.

The control plane is served by uvicorn on 127.0.0.1 (its reconciler off); the test speaks
to a second instance on the same database for the admin side (creating the tenant, making
its gateway's identity token, reading reports). The gateway app runs in-process, served
over HTTP too, with a bundle naming that control plane and the identity token beside it,
in front of the OpenAI double, whose ``usage_served`` is what the totals must equal.
"""

from __future__ import annotations

import base64
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from control_plane.app import create_app as create_control_plane
from control_plane.settings import load_settings as load_control_plane_settings
from tenant_gateway.app import create_app as create_gateway
from tenant_gateway.contract import (
    BUNDLE_FILE,
    IDENTITY_FILE,
    GatewayBundle,
    GatewayKeyDigest,
    digest_gateway_key,
)
from tenant_gateway.keys import BundleSource
from tenant_gateway.metering import USAGE_FILE
from tenant_gateway.models import ModelClient
from tenant_gateway.settings import load_settings
from tenant_gateway.store import DATABASE_FILE, ConversationStore
from tests.doubles.http_server import serve_in_thread
from tests.doubles.openai_upstream import OpenAIUpstream, openai_upstream
from tests.integration.gateway.conftest import unused_port_url
from tests.waiting import eventually

DIGEST_KEY = bytes(range(32))
FAST = {
    "TENANTRY_GATEWAY_USAGE_FLUSH_INTERVAL": "0.05",
    "TENANTRY_GATEWAY_USAGE_BATCH_SIZE": "4",
    "TENANTRY_GATEWAY_USAGE_RETRY_MAX": "0.2",
}


@dataclass
class ControlPlane:
    url: str
    admin: AsyncTestClient
    """A second instance on the same database, for the admin side."""


@pytest.fixture
def upstream() -> Iterator[OpenAIUpstream]:
    with openai_upstream() as server:
        yield server


@pytest.fixture
async def control_plane(
    database_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[ControlPlane]:
    settings = load_control_plane_settings(database_env, data_dir=str(tmp_path / "cp"))
    served = create_control_plane(settings, reconcile=False)
    with serve_in_thread(served, lifespan="on") as server:
        admin_app = create_control_plane(settings, reconcile=False)
        async with AsyncTestClient(app=admin_app) as admin:
            token = (tmp_path / "cp" / "admin-token").read_text().strip()
            admin.headers["Authorization"] = f"Bearer {token}"
            yield ControlPlane(server.url, admin)


@dataclass
class Tenant:
    id: str
    identity: str


@pytest.fixture
async def tenant(control_plane: ControlPlane) -> Tenant:
    made = await control_plane.admin.post("/api/v1/tenants", json={"slug": "acme"})
    assert made.status_code == 202, made.text
    tenant_id = made.json()["id"]
    identity = await control_plane.admin.app.state["vault"].gateway_identity(tenant_id)
    return Tenant(tenant_id, identity)


@dataclass
class Gateway:
    url: str
    key: str
    data_dir: Path
    runtime_dir: Path

    def outbox(self) -> int:
        """Events in the outbox, read with a connection of the test's own."""
        with sqlite3.connect(self.data_dir / USAGE_FILE) as db:
            return int(db.execute("SELECT COUNT(*) FROM usage_outbox").fetchone()[0])


def write_bundle(runtime_dir: Path, tenant: Tenant, key: str, models: str, cp: str) -> None:
    bundle = GatewayBundle(
        tenant_id=tenant.id,
        tenant_slug="acme",
        keys=[GatewayKeyDigest(id="key-0", digest=digest_gateway_key(key, DIGEST_KEY))],
        key_digest_key=base64.b64encode(DIGEST_KEY).decode(),
        platform_models_url=models,
        control_plane_url=cp,
    )
    tmp = runtime_dir / ".bundle.tmp"
    tmp.write_bytes(msgspec.json.encode(bundle))
    tmp.replace(runtime_dir / BUNDLE_FILE)


@contextmanager
def gateway(
    tmp_path: Path, tenant: Tenant, upstream: OpenAIUpstream, control_plane_url: str
) -> Iterator[Gateway]:
    """A gateway on ``tmp_path/volume`` (kept across calls: a restart on the same volume)."""
    runtime_dir, data_dir = tmp_path / "run", tmp_path / "volume"
    runtime_dir.mkdir(exist_ok=True)
    key = "tgk_" + secrets.token_urlsafe(32)
    write_bundle(runtime_dir, tenant, key, upstream.url, control_plane_url)
    (runtime_dir / IDENTITY_FILE).write_text(tenant.identity)
    settings = load_settings(FAST)
    bundles = BundleSource(
        runtime_dir / BUNDLE_FILE,
        msgspec.json.decode((runtime_dir / BUNDLE_FILE).read_bytes(), type=GatewayBundle),
        interval=0.05,
    )
    app = create_gateway(
        settings, bundles, ConversationStore(data_dir / DATABASE_FILE), ModelClient(settings)
    )
    with serve_in_thread(app, lifespan="on") as server:
        yield Gateway(server.url, key, data_dir, runtime_dir)


async def chat(gw: Gateway, text: str, *, stream: bool = False) -> None:
    body: dict[str, Any] = {"model": "stub-model", "messages": [{"role": "user", "content": text}]}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    headers = {"Authorization": f"Bearer {gw.key}"}
    async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=30) as http:
        if not stream:
            answer = await http.post("/v1/chat/completions", json=body)
            assert answer.status_code == 200, answer.text
            return
        async with http.stream("POST", "/v1/chat/completions", json=body) as answer:
            assert answer.status_code == 200
            assert "[DONE]" in "".join([line async for line in answer.aiter_lines()])


def served(upstream: OpenAIUpstream) -> tuple[int, int, int]:
    used = list(upstream.usage_served)
    return (
        len(used),
        sum(u["prompt_tokens"] for u in used),
        sum(u["completion_tokens"] for u in used),
    )


async def counted(cp: ControlPlane, tenant: Tenant) -> tuple[int, int, int]:
    answer = await cp.admin.get(f"/api/v1/tenants/{tenant.id}/usage")
    assert answer.status_code == 200, answer.text
    totals = answer.json()["totals"]
    return totals["requests"], totals["prompt_tokens"], totals["completion_tokens"]


async def delivered(cp: ControlPlane, tenant: Tenant, expected: tuple[int, int, int]) -> None:
    async def probe() -> bool:
        return await counted(cp, tenant) == expected

    await eventually(probe, timeout=30, what=f"the control plane to count {expected}")


async def drained(gw: Gateway) -> None:
    async def empty() -> bool:
        return gw.outbox() == 0

    await eventually(empty, timeout=30, what="the outbox to be empty")


async def test_every_answer_is_counted_by_the_control_plane(
    tmp_path: Path, control_plane: ControlPlane, tenant: Tenant, upstream: OpenAIUpstream
) -> None:
    with gateway(tmp_path, tenant, upstream, control_plane.url) as gw:
        for n in range(7):
            await chat(gw, "hello there " * (n + 1), stream=n % 2 == 1)
        expected = served(upstream)
        assert expected[0] == 7
        await delivered(control_plane, tenant, expected)
        await drained(gw)
    report = (await control_plane.admin.get(f"/api/v1/tenants/{tenant.id}/usage")).json()
    assert report["totals"]["platform"]["requests"] == 7
    assert report["totals"]["byok"]["requests"] == 0


async def test_an_answer_is_on_the_volume_before_its_response_ends(
    tmp_path: Path, tenant: Tenant, upstream: OpenAIUpstream
) -> None:
    with gateway(tmp_path, tenant, upstream, unused_port_url()) as gw:
        for n in range(1, 7):
            await chat(gw, f"message {n}", stream=n % 2 == 0)
            assert gw.outbox() == n, "the event is committed before the response has ended"


async def test_while_the_control_plane_is_unreachable_events_wait_then_arrive(
    tmp_path: Path, control_plane: ControlPlane, tenant: Tenant, upstream: OpenAIUpstream
) -> None:
    with gateway(tmp_path, tenant, upstream, unused_port_url()) as gw:
        for n in range(9):
            await chat(gw, f"while away {n}", stream=n % 3 == 0)
        assert gw.outbox() == 9
        assert await counted(control_plane, tenant) == (0, 0, 0)
        # The control plane comes back (at its address, in a new bundle): no restart needed.
        write_bundle(gw.runtime_dir, tenant, gw.key, upstream.url, control_plane.url)
        await delivered(control_plane, tenant, served(upstream))
        await drained(gw)


async def test_a_restarted_gateway_delivers_what_it_had_not(
    tmp_path: Path, control_plane: ControlPlane, tenant: Tenant, upstream: OpenAIUpstream
) -> None:
    with gateway(tmp_path, tenant, upstream, unused_port_url()) as gw:
        for n in range(5):
            await chat(gw, f"before the restart {n}")
    assert gw.outbox() == 5, "a stopping gateway that cannot deliver keeps its events"
    with gateway(tmp_path, tenant, upstream, control_plane.url) as again:
        await chat(again, "after the restart", stream=True)
        await delivered(control_plane, tenant, served(upstream))
        await drained(again)
    assert (await counted(control_plane, tenant))[0] == 6
