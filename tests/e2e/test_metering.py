"""Metering survives a gateway killed with SIGKILL while its usage events are in flight.

``tenantry up`` runs as a process; its gateways reach it through an unreliable link (see
``tests/e2e/unreliable_link.py``). The tenant's people chat while the control plane is out
of reach, so the events wait on the gateway's volume; then a batch reaches the control
plane, which stores it, and its receipt is lost; with that batch unacknowledged, the rest
still waiting and a streamed answer half sent, the gateway is killed. The runtime restarts
it, it delivers everything again, and the control plane's totals equal exactly the usage the
model double served: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.runtime.local.processes import pid_alive, read_state
from tenant_gateway.metering import USAGE_FILE
from tests.doubles.openai_upstream import OpenAIUpstream, openai_upstream
from tests.e2e.conftest import ControlPlaneProcess
from tests.e2e.unreliable_link import UnreliableLink, unreliable_link
from tests.environment import without_settings
from tests.waiting import eventually_sync

pytestmark = pytest.mark.slow


@pytest.fixture
def upstream() -> Iterator[OpenAIUpstream]:
    with openai_upstream() as server:
        yield server


@pytest.fixture
def link() -> Iterator[UnreliableLink]:
    with unreliable_link() as link:
        yield link


@pytest.fixture
def control_plane(
    tmp_path: Path, upstream: OpenAIUpstream, link: UnreliableLink
) -> Iterator[ControlPlaneProcess]:
    env = without_settings(
        TENANTRY_PLATFORM_MODELS_URL=upstream.url,
        TENANTRY_INTERNAL_URL=link.url,
        TENANTRY_RESYNC_INTERVAL="0.5",
        TENANTRY_LOG_LEVEL="info",
        TENANTRY_GATEWAY_USAGE_BATCH_SIZE="5",
        TENANTRY_GATEWAY_USAGE_FLUSH_INTERVAL="0.2",
        TENANTRY_GATEWAY_USAGE_RETRY_MAX="1",
    )
    cp = ControlPlaneProcess(tmp_path / "data", env)
    cp.start()
    link.target = cp.url
    yield cp
    if cp.process is not None and cp.process.poll() is None:
        cp.stop()
    for pids in cp.all_gateway_pids().values():
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def chat(endpoint: str, key: str, text: str, *, stream: bool) -> None:
    body: dict[str, Any] = {"model": "stub-model", "messages": [{"role": "user", "content": text}]}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream(
        "POST", f"{endpoint}/v1/chat/completions", json=body, headers=headers, timeout=30
    ) as answer:
        assert answer.status_code == 200, answer.read()
        answer.read()


def half_a_stream(endpoint: str, key: str, first_chunk: threading.Event) -> None:
    """A streamed chat that is still running when the gateway dies."""
    body = {
        "model": "stub-model",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "a long answer cut short by the kill"}],
    }
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.stream(
            "POST", f"{endpoint}/v1/chat/completions", json=body, headers=headers, timeout=60
        ) as answer:
            for line in answer.iter_lines():
                if line.startswith("data: "):
                    first_chunk.set()
    except httpx.HTTPError:
        pass  # the gateway was killed under it


def totals(client: httpx.Client, tenant_id: str) -> tuple[int, int, int]:
    answer = client.get(f"/api/v1/tenants/{tenant_id}/usage", params={"group_by": "model"})
    assert answer.status_code == 200, answer.text
    t = answer.json()["totals"]
    return t["requests"], t["prompt_tokens"], t["completion_tokens"]


def served(upstream: OpenAIUpstream) -> tuple[int, int, int]:
    used = list(upstream.usage_served)
    return (
        len(used),
        sum(u["prompt_tokens"] for u in used),
        sum(u["completion_tokens"] for u in used),
    )


def outbox(volume: Path) -> int:
    with sqlite3.connect(volume / USAGE_FILE) as db:
        return int(db.execute("SELECT COUNT(*) FROM usage_outbox").fetchone()[0])


def test_a_gateway_killed_with_events_in_flight_loses_and_doubles_nothing(
    control_plane: ControlPlaneProcess, upstream: OpenAIUpstream, link: UnreliableLink
) -> None:
    cp = control_plane
    with cp.client() as client:
        tenant = client.post("/api/v1/tenants", json={"slug": "metered"}).json()
        key = tenant["gateway_key"]["key"]

        def running() -> dict[str, Any] | None:
            body: dict[str, Any] = client.get("/api/v1/tenants/metered").json()
            assert body["state"] != "failed", body["reason"]
            return body if body["state"] == "running" else None

        endpoint = eventually_sync(running, timeout=120, what="tenant running")["endpoint"]
        runtime_dir = cp.data_dir / "gateways" / tenant["id"]
        volume = cp.data_dir / "volumes" / tenant["id"]

        # 1. The control plane is out of reach: every answer's event waits on the volume.
        link.mode = "down"
        for n in range(12):
            chat(endpoint, key, f"message number {n} " * (n % 4 + 1), stream=n % 2 == 1)
        assert outbox(volume) == 12
        eventually_sync(lambda: link.refused > 0, what="a delivery refused by the link")
        assert totals(client, tenant["id"]) == (0, 0, 0)

        # 2. A batch reaches the control plane and is stored; its receipt is lost.
        link.mode = "withhold"
        eventually_sync(lambda: link.withheld > 0, timeout=30, what="a receipt withheld")
        assert totals(client, tenant["id"])[0] == 5, "the oldest batch of five is stored"

        # 3. A streamed answer is half way when the gateway is killed.
        upstream.chunk_delay = 2.0
        first_chunk = threading.Event()
        in_flight = threading.Thread(target=half_a_stream, args=(endpoint, key, first_chunk))
        in_flight.start()
        assert first_chunk.wait(timeout=30), "the streamed answer has begun"
        state = read_state(runtime_dir)
        assert state is not None
        os.kill(state.pid, signal.SIGKILL)
        in_flight.join(timeout=30)
        upstream.chunk_delay = 0.0
        assert outbox(volume) == 12, "nothing had been acknowledged"

        # 4. The link heals; the runtime restarts the gateway, which delivers what it had not.
        link.mode = "pass"

        def restarted() -> bool:
            new = read_state(runtime_dir)
            return new is not None and new.pid != state.pid and pid_alive(new.pid)

        eventually_sync(restarted, timeout=60, what="the gateway restarted")
        eventually_sync(lambda: outbox(volume) == 0, timeout=60, what="the outbox delivered")

        expected = served(upstream)
        assert expected[0] == 12, "the cut stream was never served whole"
        assert len(upstream.requests_to("/v1/chat/completions")) == 13
        assert totals(client, tenant["id"]) == expected
        assert link.events_forwarded > 12, "some events really were delivered twice"
