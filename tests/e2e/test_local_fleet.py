"""``tenantry up --fleet-model``: the embedded default with a local model fleet, end to end.

The vLLM stand-in plays vLLM (``TENANTRY_FLEET_COMMAND``); a tenant's gateway chats with the
fleet's model through the platform models URL that ``tenantry up`` pointed at it.
"""

from __future__ import annotations

import json
import shlex
import signal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from control_plane.fleet.supervisor import FleetRecord
from control_plane.runtime.local.processes import pid_alive
from tests.doubles.vllm_standin import standin_command, standin_environment
from tests.e2e.conftest import ControlPlaneProcess
from tests.waiting import eventually_sync

pytestmark = pytest.mark.slow


def fleet_ready(cp: ControlPlaneProcess) -> FleetRecord:
    def ready() -> FleetRecord | None:
        assert cp.process is not None
        assert cp.process.poll() is None, cp.log.read_text()
        try:
            record = msgspec.json.decode(
                (cp.data_dir / "fleet" / "fleet.json").read_bytes(), type=FleetRecord
            )
        except (OSError, msgspec.DecodeError):
            return None
        return record if record.state == "ready" else None

    return eventually_sync(ready, timeout=120, what="the local fleet ready")


def wait_running(client: httpx.Client, ref: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        tenant: dict[str, Any] = client.get(f"/api/v1/tenants/{ref}").json()
        assert tenant["state"] != "failed", tenant["reason"]
        return tenant if tenant["state"] == "running" else None

    return eventually_sync(probe, timeout=120, what=f"{ref} running")


def test_a_tenant_chats_with_the_local_fleet_model(tmp_path: Path) -> None:
    env = {k: v for k, v in standin_environment().items() if not k.startswith("TENANTRY_")}
    env.update(
        TENANTRY_FLEET_COMMAND=shlex.join(standin_command()),
        TENANTRY_RESYNC_INTERVAL="0.5",
        TENANTRY_LOG_LEVEL="info",
    )
    fleet_args = ["--fleet-model", "org/test-model", "--fleet-served-model-name", "local-llm"]
    vllm_options = ["--", "--load-seconds", "1", "--max-model-len", "4096"]
    cp = ControlPlaneProcess(
        tmp_path / "data", env, [*fleet_args, "--fleet-port", "0", *vllm_options]
    )
    cp.start()
    try:
        record = fleet_ready(cp)
        assert record.served_model_name == "local-llm"
        assert cp.process is not None
        assert record.supervisor_pid == cp.process.pid
        with cp.client() as client:
            acme = client.post("/api/v1/tenants", json={"slug": "acme"}).json()
            endpoint = wait_running(client, "acme")["endpoint"]
        headers = {"Authorization": f"Bearer {acme['gateway_key']['key']}"}
        with httpx.Client(base_url=endpoint, headers=headers, timeout=30) as gateway:
            models = gateway.get("/v1/models").json()
            assert "local-llm" in [m["id"] for m in models["data"]]
            reply = gateway.post(
                "/v1/chat/completions",
                json={"model": "local-llm", "messages": [{"role": "user", "content": "hi fleet"}]},
            )
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == "echo: hi fleet"
    finally:
        code = cp.stop()
    assert code in (0, -signal.SIGTERM)
    assert record.pid is not None
    assert not pid_alive(record.pid), "vLLM outlived the control plane"
    assert not cp.all_gateway_pids()
    log = cp.log.read_text()
    assert "waiting for vLLM to load org/test-model" in log
    assert "vLLM is ready" in log
    first_line = (cp.data_dir / "fleet" / "vllm.log").read_text().splitlines()[0]
    argv = json.loads(first_line.removeprefix("stand-in argv: "))
    assert argv[-4:] == ["--load-seconds", "1", "--max-model-len", "4096"]
    assert record.base_url.endswith(f":{argv[argv.index('--port') + 1]}/v1")
