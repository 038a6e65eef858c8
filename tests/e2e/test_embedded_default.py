"""The main flow on the embedded default, end to end, with real processes and real HTTP:
provision tenants, chat with their gateways, survive crashes of gateways and of the
control plane itself, and clean up after deletion."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import httpx
import pytest

from control_plane.runtime.local.processes import pid_alive, read_state
from tests.e2e.conftest import ControlPlaneProcess
from tests.waiting import eventually_sync

pytestmark = pytest.mark.slow


def wait_running(client: httpx.Client, ref: str, timeout: float = 120) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        tenant: dict[str, Any] = client.get(f"/api/v1/tenants/{ref}").json()
        assert tenant["state"] != "failed", tenant["reason"]
        return tenant if tenant["state"] == "running" else None

    return eventually_sync(probe, timeout=timeout, what=f"{ref} running")


def chat(endpoint: str, key: str, text: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{endpoint}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "stub-model", "messages": [{"role": "user", "content": text}], **extra},
        timeout=30,
    )


def stream_chat(endpoint: str, key: str, text: str) -> str:
    pieces = []
    with httpx.stream(
        "POST",
        f"{endpoint}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": "stub-model",
            "stream": True,
            "messages": [{"role": "user", "content": text}],
        },
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        done = False
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            payload = line.removeprefix("data: ")
            if payload == "[DONE]":
                done = True
                break
            delta = json.loads(payload)["choices"][0]["delta"]
            pieces.append(delta.get("content") or "")
        assert done, "the stream ends with [DONE]"
    return "".join(pieces)


def test_two_tenants_chat_and_their_keys_do_not_cross(
    control_plane_process: ControlPlaneProcess,
) -> None:
    cp = control_plane_process
    with cp.client() as client:
        acme = client.post("/api/v1/tenants", json={"slug": "acme", "plan": "pro"}).json()
        globex = client.post("/api/v1/tenants", json={"slug": "globex"}).json()
        acme_endpoint = wait_running(client, "acme")["endpoint"]
        globex_endpoint = wait_running(client, "globex")["endpoint"]
        assert acme_endpoint != globex_endpoint
        acme_key = acme["gateway_key"]["key"]
        globex_key = globex["gateway_key"]["key"]

        reply = chat(acme_endpoint, acme_key, "hello from acme")
        assert reply.status_code == 200, reply.text
        assert "hello from acme" in reply.json()["choices"][0]["message"]["content"]
        assert "hello from globex" in stream_chat(globex_endpoint, globex_key, "hello from globex")

        refused = chat(globex_endpoint, acme_key, "let me in")
        assert refused.status_code == 401
        assert chat(acme_endpoint, globex_key, "let me in").status_code == 401

        # Conversations are kept on each tenant's own volume.
        for tenant in (acme, globex):
            assert (cp.data_dir / "volumes" / tenant["id"] / "conversations.sqlite3").exists()

        # The live event stream shows provisioning progress as server-sent events.
        with client.stream(
            "GET", "/api/v1/tenants/acme/events", headers={"Accept": "text/event-stream"}
        ) as events:
            kinds = []
            for line in events.iter_lines():
                if line.startswith("event: "):
                    kinds.append(line.removeprefix("event: "))
                if "tenant.running" in kinds:
                    break
        assert kinds[0] == "tenant.created"
        assert "tenant.running" in kinds

    # No plaintext gateway key or admin token rests in a log, the database or a volume.
    secrets = [acme_key, globex_key]
    for path in cp.data_dir.rglob("*"):
        if path.is_file() and path.name != "admin-token":
            content = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in content, f"plaintext key in {path}"
    log = cp.log.read_bytes()
    for secret in secrets:
        assert secret.encode() not in log


def test_a_killed_gateway_comes_back(control_plane_process: ControlPlaneProcess) -> None:
    cp = control_plane_process
    with cp.client() as client:
        tenant = client.post("/api/v1/tenants", json={"slug": "phoenix"}).json()
        endpoint = wait_running(client, "phoenix")["endpoint"]
        state = read_state(cp.data_dir / "gateways" / tenant["id"])
        assert state is not None
        os.kill(state.pid, signal.SIGKILL)

        def restarted() -> bool:
            events = client.get("/api/v1/tenants/phoenix/events").json()
            return any(e["type"] == "gateway.restarted" for e in events)

        eventually_sync(restarted, timeout=60, what="gateway restarted")
        assert wait_running(client, "phoenix")["endpoint"] == endpoint
        reply = chat(endpoint, tenant["gateway_key"]["key"], "still there?")
        assert reply.status_code == 200, reply.text


def test_control_plane_killed_mid_provisioning_recovers_every_tenant(
    control_plane_process: ControlPlaneProcess,
) -> None:
    cp = control_plane_process
    slugs = [f"burst-{n}" for n in range(10)]
    with cp.client() as client:
        created = {}
        for slug in slugs:
            response = client.post(
                "/api/v1/tenants", json={"slug": slug}, headers={"Idempotency-Key": slug}
            )
            assert response.status_code == 202
            created[slug] = response.json()
    cp.kill()  # mid-provisioning: some gateways started, some starting, some not yet

    cp.start()
    with cp.client() as client:
        # A client retrying its requests with the same keys gets the same tenants.
        for slug in slugs:
            again = client.post(
                "/api/v1/tenants", json={"slug": slug}, headers={"Idempotency-Key": slug}
            )
            assert again.json()["id"] == created[slug]["id"]
        running = {slug: wait_running(client, slug) for slug in slugs}
        page = client.get("/api/v1/tenants", params={"limit": 200}).json()
        assert sorted(t["slug"] for t in page["items"]) == sorted(slugs), "no duplicates"

        pids = cp.all_gateway_pids()
        assert sorted(pids) == sorted(t["id"] for t in running.values())
        assert all(len(p) == 1 for p in pids.values()), f"exactly one gateway each: {pids}"
        for slug, tenant in running.items():
            key = created[slug]["gateway_key"]["key"]
            assert chat(tenant["endpoint"], key, slug).status_code == 200

        # Deleting a tenant stops its process and removes it.
        victim = running["burst-0"]
        (victim_pid,) = pids[victim["id"]]
        client.delete("/api/v1/tenants/burst-0")

        def deleted() -> bool:
            state = client.get(f"/api/v1/tenants/{victim['id']}").json()["state"]
            return state == "deleted"

        eventually_sync(deleted, timeout=60, what="burst-0 deleted")
        assert not pid_alive(victim_pid)
        assert victim["id"] not in cp.all_gateway_pids()

    # A clean stop of the control plane stops every gateway it runs.
    # (uvicorn re-raises SIGTERM after its graceful shutdown, hence -SIGTERM.)
    assert cp.stop() in (0, -signal.SIGTERM)
    assert cp.all_gateway_pids() == {}
