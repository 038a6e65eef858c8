"""``tenantry fleet serve`` as a real process, with the vLLM stand-in as its child."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from control_plane.cli.fleet_cmd import build_supervisor
from control_plane.errors import SettingsError
from control_plane.fleet import FleetError
from control_plane.fleet.errors import FleetPortTaken
from control_plane.fleet.supervisor import FleetRecord
from control_plane.runtime.local.processes import pid_alive
from control_plane.settings import FleetSettings, load_settings
from tests.doubles.vllm_standin import standin_command, standin_environment
from tests.waiting import eventually_sync


class FleetServe:
    """One ``tenantry fleet serve`` process on a data dir of its own."""

    def __init__(self, tmp_path: Path, *args: str, command: tuple[str, ...] | None = None) -> None:
        self.data_dir = tmp_path / "data"
        self.output = tmp_path / "fleet-serve.out"
        env = {k: v for k, v in standin_environment().items() if not k.startswith("TENANTRY_")}
        env.update(
            TENANTRY_FLEET_COMMAND=shlex.join(command or standin_command()),
            TENANTRY_FLEET_RESTART_DELAY="0.05",
            TENANTRY_LOG_FORMAT="text",
        )
        argv = [sys.executable, "-m", "control_plane.cli.main", "fleet", "serve"]
        argv += ["--data-dir", str(self.data_dir), "--port", "0", *args]
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)

    @property
    def record_path(self) -> Path:
        return self.data_dir / "fleet" / "fleet.json"

    def text(self) -> str:
        return self.output.read_text()

    def wait_ready(self) -> FleetRecord:
        def ready() -> FleetRecord | None:
            assert self.process.poll() is None, self.text()
            try:
                record = msgspec.json.decode(self.record_path.read_bytes(), type=FleetRecord)
            except (OSError, msgspec.DecodeError):
                return None
            return record if record.state == "ready" else None

        return eventually_sync(ready, timeout=60, what="the fleet ready")

    def wait(self) -> int:
        return self.process.wait(timeout=60)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[FleetServe]]:
    """Fleets a test starts; afterwards none of them, nor their vLLMs, may be left."""
    fleets: list[FleetServe] = []
    yield fleets
    left = []
    for fleet in fleets:
        if fleet.process.poll() is None:
            fleet.process.kill()
            fleet.process.wait(timeout=30)
        try:
            record = msgspec.json.decode(fleet.record_path.read_bytes(), type=FleetRecord)
        except (OSError, msgspec.DecodeError):
            continue
        if record.pid is not None and pid_alive(record.pid):
            os.kill(record.pid, signal.SIGKILL)
            left.append(record.pid)
    assert not left, f"vLLM stand-ins left running: {left}"


def test_serves_the_model_and_stops_cleanly_on_sigterm(
    tmp_path: Path, started: list[FleetServe]
) -> None:
    fleet = FleetServe(
        tmp_path,
        "--model",
        "org/test-model",
        "--served-model-name",
        "local-llm",
        "--",
        "--gpu-memory-utilization",
        "0.8",
    )
    started.append(fleet)
    record = fleet.wait_ready()
    assert record.supervisor_pid == fleet.process.pid
    assert record.pid is not None
    models = httpx.get(f"{record.base_url}/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == ["local-llm"]
    log = (fleet.data_dir / "fleet" / "vllm.log").read_text()
    argv = json.loads(log.splitlines()[0].removeprefix("stand-in argv: "))
    assert argv[:2] == ["serve", "org/test-model"]
    assert argv[-2:] == ["--gpu-memory-utilization", "0.8"]

    fleet.process.send_signal(signal.SIGTERM)
    assert fleet.wait() == 0
    assert not pid_alive(record.pid)
    assert not fleet.record_path.exists()
    text = fleet.text()
    assert "waiting for vLLM to load org/test-model" in text
    assert "vLLM is ready" in text
    assert "vLLM stopped" in text


def test_a_killed_supervisor_leaves_no_orphan(tmp_path: Path, started: list[FleetServe]) -> None:
    fleet = FleetServe(tmp_path, "--model", "org/test-model")
    started.append(fleet)
    record = fleet.wait_ready()
    assert record.pid is not None
    assert pid_alive(record.pid)

    fleet.process.send_signal(signal.SIGKILL)
    fleet.wait()
    eventually_sync(lambda: not pid_alive(record.pid), timeout=30, what="vLLM gone with it")


def test_a_crash_loop_exits_with_the_reason(tmp_path: Path, started: list[FleetServe]) -> None:
    fleet = FleetServe(tmp_path, "--model", "m", "--", "--exit-code", "7")
    started.append(fleet)
    assert fleet.wait() == 1
    text = fleet.text()
    assert "vLLM crashed 5 times within 600s" in text
    assert "exited with code 7" in text
    assert "restarting in 0.05s (crash 1 of 5 within 600s)" in text
    assert str(fleet.data_dir / "fleet" / "vllm.log") in text


def test_a_missing_vllm_is_refused_with_how_to_install_it(
    tmp_path: Path, started: list[FleetServe]
) -> None:
    fleet = FleetServe(tmp_path, "--model", "m", command=("/nonexistent/vllm",))
    started.append(fleet)
    assert fleet.wait() == 2
    assert "cannot run '/nonexistent/vllm' (not found)" in fleet.text()
    assert "pip install 'tenantry[fleet]'" in fleet.text()
    assert not (fleet.data_dir / "fleet").exists()


@pytest.mark.parametrize(
    ("fleet", "says"),
    [
        (FleetSettings(), "TENANTRY_FLEET_MODEL"),
        (FleetSettings(model="m", command=("/nonexistent/vllm",)), "(not found)"),
        (
            FleetSettings(model="m", command=standin_command(), extra_args=("--port=1",)),
            "--port is set by tenantry itself",
        ),
    ],
)
def test_what_cannot_start_is_refused_with_a_reason(
    tmp_path: Path, fleet: FleetSettings, says: str
) -> None:
    settings = load_settings({}, data_dir=str(tmp_path))
    with pytest.raises((FleetError, SettingsError)) as caught:
        build_supervisor(settings, dataclasses.replace(fleet, port=0))
    assert says in str(caught.value)


def test_a_taken_port_is_refused(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        fleet = FleetSettings(model="m", command=standin_command(), port=port)
        with pytest.raises(FleetPortTaken) as caught:
            build_supervisor(settings, fleet)
    assert f"cannot listen on 127.0.0.1:{port}" in str(caught.value)
    assert "TENANTRY_FLEET_PORT" in str(caught.value)
