"""``python -m tenant_gateway`` as a real process, the way a runtime starts it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from tenant_gateway.contract import GatewayState
from tests.doubles.openai_upstream import OpenAIUpstream
from tests.integration.gateway.conftest import CHAT_BODY, TENANT_ID, new_key, write_bundle
from tests.waiting import eventually_sync


def gateway_command(runtime_dir: Path, data_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tenant_gateway",
        "--runtime-dir",
        str(runtime_dir),
        "--data-dir",
        str(data_dir),
        *extra,
    ]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
    env.update(extra)
    return env


class GatewayProcess:
    def __init__(self, runtime_dir: Path, data_dir: Path, *extra: str, **env: str) -> None:
        self.runtime_dir = runtime_dir
        self.log = runtime_dir / "gateway.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                gateway_command(runtime_dir, data_dir, *extra),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=clean_env(**env),
            )

    def wait_ready(self, timeout: float = 30) -> GatewayState:
        def ready() -> GatewayState | None:
            assert self.process.poll() is None, f"gateway exited: {self.log.read_text()}"
            try:
                state = msgspec.json.decode(
                    (self.runtime_dir / "state.json").read_bytes(), type=GatewayState
                )
            except (OSError, msgspec.DecodeError):
                return None
            try:
                response = httpx.get(f"http://{state.host}:{state.port}/readyz", timeout=2)
            except httpx.HTTPError:
                return None
            return state if response.status_code == 200 else None

        return eventually_sync(ready, timeout=timeout, what="gateway ready")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    runtime_dir = tmp_path / "run"
    runtime_dir.mkdir()
    return runtime_dir, tmp_path / "data"


@pytest.fixture
def processes() -> Iterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    yield started
    for gateway in started:
        if gateway.process.poll() is None:
            gateway.process.kill()
            gateway.process.wait()


def test_the_gateway_process_serves_holds_its_lock_and_stops_cleanly(
    dirs: tuple[Path, Path], upstream: OpenAIUpstream, processes: list[GatewayProcess]
) -> None:
    runtime_dir, data_dir = dirs
    key = new_key()
    write_bundle(runtime_dir, [key], upstream.url)
    gateway = GatewayProcess(runtime_dir, data_dir, TENANTRY_GATEWAY_LOG_LEVEL="debug")
    processes.append(gateway)
    state = gateway.wait_ready()
    assert state.pid == gateway.process.pid
    assert state.tenant_id == TENANT_ID
    assert (state.host, state.port > 0) == ("127.0.0.1", True)
    url = f"http://127.0.0.1:{state.port}"
    assert httpx.get(f"{url}/readyz").json() == {
        "status": "ready",
        "tenant_id": TENANT_ID,
        "credentials": [],
    }

    headers = {"Authorization": f"Bearer {key}"}
    reply = httpx.post(f"{url}/v1/chat/completions", json=CHAT_BODY, headers=headers, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "echo: hello"
    pieces = []
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json={**CHAT_BODY, "stream": True},
        headers=headers,
        timeout=30,
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                pieces.append(json.loads(line[6:])["choices"][0]["delta"].get("content") or "")
    assert "".join(pieces) == "echo: hello"
    assert (data_dir / "conversations.sqlite3").exists()

    # A second gateway for the same tenant refuses to start while the first holds the lock.
    second = subprocess.run(
        gateway_command(runtime_dir, data_dir),
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert second.returncode == 75, second.stderr
    assert "another gateway is running" in second.stderr
    assert json.loads((runtime_dir / "state.json").read_text())["pid"] == gateway.process.pid

    assert gateway.stop() == 0
    assert not (runtime_dir / "state.json").exists()
    log = gateway.log.read_bytes()
    assert key.encode() not in log, "a gateway key was logged"
    for line in log.decode().splitlines():
        if line.startswith("{"):
            assert {"ts", "level", "logger", "msg"} <= json.loads(line).keys()


def test_a_killed_gateway_leaves_the_lock_free_for_the_next(
    dirs: tuple[Path, Path], processes: list[GatewayProcess]
) -> None:
    runtime_dir, data_dir = dirs
    write_bundle(runtime_dir, [new_key()], None)
    first = GatewayProcess(runtime_dir, data_dir)
    processes.append(first)
    first.wait_ready()
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)
    second = GatewayProcess(runtime_dir, data_dir)
    processes.append(second)
    assert second.wait_ready().pid == second.process.pid
    assert second.stop() == 0


def test_a_taken_port_falls_back_to_a_free_one(
    dirs: tuple[Path, Path], processes: list[GatewayProcess]
) -> None:
    runtime_dir, data_dir = dirs
    write_bundle(runtime_dir, [new_key()], None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        gateway = GatewayProcess(runtime_dir, data_dir, "--port", str(port))
        processes.append(gateway)
        state = gateway.wait_ready()
    assert state.port not in (0, port)
    assert gateway.stop() == 0
    assert f"port {port} is not available" in gateway.log.read_text()


def test_a_missing_or_broken_bundle_exits_78(dirs: tuple[Path, Path]) -> None:
    runtime_dir, data_dir = dirs
    missing = subprocess.run(
        gateway_command(runtime_dir, data_dir), capture_output=True, text=True, timeout=30
    )
    assert missing.returncode == 78
    assert "bundle.json" in missing.stderr
    (runtime_dir / "bundle.json").write_text('{"tenant_id": "t"}')
    broken = subprocess.run(
        gateway_command(runtime_dir, data_dir), capture_output=True, text=True, timeout=30
    )
    assert broken.returncode == 78
    assert "invalid bundle" in broken.stderr
    assert not (runtime_dir / "state.json").exists()


def test_a_bad_setting_exits_78_naming_the_variable(dirs: tuple[Path, Path]) -> None:
    runtime_dir, data_dir = dirs
    write_bundle(runtime_dir, [new_key()], None)
    result = subprocess.run(
        gateway_command(runtime_dir, data_dir),
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(TENANTRY_GATEWAY_LOG_LEVEL="loud"),
    )
    assert result.returncode == 78
    assert "TENANTRY_GATEWAY_LOG_LEVEL" in result.stderr


def test_the_environment_supplies_the_model_endpoint_when_the_bundle_has_none(
    dirs: tuple[Path, Path], upstream: OpenAIUpstream, processes: list[GatewayProcess]
) -> None:
    runtime_dir, data_dir = dirs
    key = new_key()
    write_bundle(runtime_dir, [key], None)
    gateway = GatewayProcess(runtime_dir, data_dir, TENANTRY_PLATFORM_MODELS_URL=upstream.url)
    processes.append(gateway)
    state = gateway.wait_ready()
    reply = httpx.post(
        f"http://127.0.0.1:{state.port}/v1/chat/completions",
        json=CHAT_BODY,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert gateway.stop() == 0


def test_a_data_dir_that_cannot_be_used_fails_the_start_with_70(
    dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    runtime_dir, _ = dirs
    write_bundle(runtime_dir, [new_key()], None)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    result = subprocess.run(
        gateway_command(runtime_dir, not_a_dir / "data"),
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert result.returncode == 70, result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("tenant_gateway: the gateway failed to start: cannot open")
    assert "conversations.sqlite3" in last_line
    assert not (runtime_dir / "state.json").exists()
