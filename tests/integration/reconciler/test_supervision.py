"""Supervision on the local runtime: crashed gateways come back, crash loops fail the tenant,
and a restarted control plane adopts the gateways that kept running."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import msgspec

from control_plane.runtime.local.processes import pid_alive
from tenant_gateway.contract import GatewayBundle
from tests.integration.reconciler.conftest import (
    ControlPlaneFactory,
    event_types,
    gateway_pid,
    live_gateway_pids,
    readiness,
    wait_state,
)
from tests.waiting import eventually


async def test_a_killed_gateway_is_restarted_on_the_same_endpoint(
    control_plane: ControlPlaneFactory, data_dir: Path
) -> None:
    async with control_plane() as client:
        tenant = (await client.post("/api/v1/tenants", json={"slug": "crashy"})).json()
        before = await wait_state(client, "crashy", "running")
        old_pid = gateway_pid(data_dir, tenant["id"])
        os.kill(old_pid, signal.SIGKILL)

        async def restarted() -> bool:
            return "gateway.restarted" in await event_types(client, "crashy")

        try:
            await eventually(restarted, timeout=30, what="gateway restarted")
        except AssertionError as exc:
            events = (await client.get("/api/v1/tenants/crashy/events")).json()
            log = (data_dir / "gateways" / tenant["id"] / "gateway.log").read_text()
            raise AssertionError(f"{exc}\nevents: {events}\ngateway log:\n{log}") from None
        new_pid = gateway_pid(data_dir, tenant["id"])
        assert new_pid != old_pid
        assert not pid_alive(old_pid)
        after = await wait_state(client, "crashy", "running")
        assert after["endpoint"] == before["endpoint"], "a restart keeps the endpoint"
        assert (await readiness(after["endpoint"]))["tenant_id"] == tenant["id"]
        types = await event_types(client, "crashy")
        assert types.index("gateway.crashed") < types.index("gateway.restarted")
        await client.delete("/api/v1/tenants/crashy")
        await wait_state(client, tenant["id"], "deleted")


async def test_a_crash_looping_gateway_fails_the_tenant_then_recovers(
    control_plane: ControlPlaneFactory, data_dir: Path, tmp_path: Path
) -> None:
    # The gateway command refuses to start while the flag file exists.
    flag = tmp_path / "refuse-to-start"
    command = [
        "bash",
        "-c",
        'if [ -e "$0" ]; then echo "refusing to start" >&2; exit 3; fi; exec "$1" "${@:2}"',
        str(flag),
        sys.executable,
        "-m",
        "tenant_gateway",
    ]
    async with control_plane(
        gateway_command=command,
        TENANTRY_LOCAL_MAX_RESTARTS="3",
        TENANTRY_LOCAL_RESTART_WINDOW="60",
    ) as client:
        tenant = (await client.post("/api/v1/tenants", json={"slug": "loopy"})).json()
        await wait_state(client, "loopy", "running")
        flag.touch()
        os.kill(gateway_pid(data_dir, tenant["id"]), signal.SIGKILL)

        failed = await wait_state(client, "loopy", "failed", timeout=60)
        # Either the supervisor gives up after 3 crashes, or a reconcile pass racing it sees
        # the start fail; never a start that waits out its timeout on the killed gateway.
        reason = failed["reason"]
        assert reason, "a failed tenant says why"
        assert any(cause in reason for cause in ("crashed 3 times", "exited with code 3")), reason
        assert "gateway.crashed" in await event_types(client, "loopy")

        # The reconciler retries with backoff; once the gateway can start, it recovers.
        flag.unlink()
        recovered = await wait_state(client, "loopy", "running", timeout=60, tolerate_failed=True)
        assert recovered["reason"] is None
        await client.delete("/api/v1/tenants/loopy")
        await wait_state(client, tenant["id"], "deleted")
        assert live_gateway_pids(data_dir, tenant["id"]) == []


async def test_a_restarted_control_plane_adopts_running_gateways(
    control_plane: ControlPlaneFactory, data_dir: Path
) -> None:
    async with control_plane(TENANTRY_LOCAL_STOP_GATEWAYS_ON_EXIT="false") as client:
        tenant = (await client.post("/api/v1/tenants", json={"slug": "stays"})).json()
        endpoint = (await wait_state(client, "stays", "running"))["endpoint"]
        pid = gateway_pid(data_dir, tenant["id"])
    assert pid_alive(pid), "the gateway outlives a control plane told not to stop it"

    async with control_plane() as client:
        running = await wait_state(client, "stays", "running")
        assert running["endpoint"] == endpoint

        async def adopted() -> bool:
            return "gateway.adopted" in await event_types(client, "stays")

        await eventually(adopted, timeout=30, what="adoption recorded")
        assert gateway_pid(data_dir, tenant["id"]) == pid, "adopted, not started twice"
        assert live_gateway_pids(data_dir, tenant["id"]) == [pid]
        await client.delete("/api/v1/tenants/stays")
        await wait_state(client, tenant["id"], "deleted")
    assert not pid_alive(pid)


async def test_gateways_of_unknown_tenants_are_reaped_at_start(
    control_plane: ControlPlaneFactory, data_dir: Path
) -> None:
    stray_id = "01a20000-0000-7000-8000-000000000001"
    runtime_dir = data_dir / "gateways" / stray_id
    runtime_dir.mkdir(parents=True)
    bundle = GatewayBundle(
        tenant_id=stray_id,
        tenant_slug="stray",
        keys=[],
        key_digest_key="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )
    (runtime_dir / "bundle.json").write_bytes(msgspec.json.encode(bundle))
    stray = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tenant_gateway",
            "--runtime-dir",
            str(runtime_dir),
            "--data-dir",
            str(data_dir / "volumes" / stray_id),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await eventually(
            lambda: asyncio.sleep(0, (runtime_dir / "state.json").exists()),
            timeout=30,
            what="stray gateway up",
        )
        async with control_plane() as client:
            assert (await client.get("/readyz")).status_code == 200
            assert stray.wait(timeout=10) is not None
            assert not runtime_dir.exists()
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()
