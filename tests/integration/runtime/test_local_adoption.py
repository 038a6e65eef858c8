"""Adoption on the local runtime against real processes: what a killed gateway leaves behind
(its ``state.json``, and its lock for the moment it takes to die) is never waited on."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from control_plane.runtime.base import GatewaySpec
from control_plane.runtime.local import LocalRuntime
from control_plane.runtime.local.processes import read_state
from control_plane.settings import load_settings
from tenant_gateway.contract import LOCK_FILE, STATE_FILE, GatewayBundle, GatewayState

READY_TIMEOUT = 20.0

LOCK_HOLDER = (
    "import fcntl, sys\n"
    "handle = open(sys.argv[1], 'a')\n"
    "fcntl.flock(handle, fcntl.LOCK_EX)\n"
    "print('locked', flush=True)\n"
    "sys.stdin.read()\n"
)


async def _no_events(_tenant: str, _type: str, _message: str, _data: dict[str, Any]) -> None:
    return None


def _spec(tenant_id: str) -> GatewaySpec:
    return GatewaySpec(
        tenant_id=tenant_id,
        slug="dying",
        bundle=GatewayBundle(
            tenant_id=tenant_id,
            tenant_slug="dying",
            keys=[],
            key_digest_key=base64.b64encode(b"k" * 32).decode(),
        ),
    )


async def test_a_dying_gateways_leftovers_are_not_adopted(tmp_path: Path) -> None:
    settings = load_settings(
        {"TENANTRY_LOCAL_READY_TIMEOUT": str(READY_TIMEOUT)}, data_dir=str(tmp_path / "data")
    )
    runtime = LocalRuntime(settings)
    await runtime.start(_no_events)
    tenant_id = "01a203a4-d589-7207-900c-760f4b4ccdf1"
    runtime_dir = settings.gateways_dir / tenant_id
    runtime_dir.mkdir(parents=True)

    # The old gateway's port: it accepts and hangs up, as a process being killed does.
    probed = asyncio.Event()

    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        probed.set()
        writer.close()

    old_port_server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    old_port = old_port_server.sockets[0].getsockname()[1]
    # A process still holding the lock, named by a state.json it will not remove.
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(runtime_dir / LOCK_FILE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"locked\n"
        stale = GatewayState(
            tenant_id=tenant_id,
            pid=holder.pid,
            host="127.0.0.1",
            port=old_port,
            started_at=time.time(),
        )
        (runtime_dir / STATE_FILE).write_bytes(msgspec.json.encode(stale))

        ensure = asyncio.create_task(runtime.ensure_running(_spec(tenant_id)))
        # The runtime waits on the lock holder, as it should for a gateway still starting...
        await asyncio.wait_for(probed.wait(), READY_TIMEOUT)
        # ...which then dies without a word, leaving its state.json behind.
        holder.kill()
        holder.wait()
        old_port_server.close()
        # Waiting out the ready timeout on the stale state.json would raise RuntimeFailure.
        status = await asyncio.wait_for(ensure, READY_TIMEOUT + 5)

        assert status.adopted is False, "a dead gateway is not adopted"
        fresh = read_state(runtime_dir)
        assert fresh is not None
        assert fresh.pid != holder.pid
        async with httpx.AsyncClient(trust_env=False) as http:
            readiness = (await http.get(f"{status.endpoint}/readyz")).json()
        assert readiness["tenant_id"] == tenant_id
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()  # reaps it and closes its pipes
        await runtime.remove(tenant_id)
        await runtime.close()
        old_port_server.close()
    assert read_state(runtime_dir) is None
