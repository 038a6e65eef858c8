"""``tenantry up`` as a real process in a temp dir, talked to over HTTP like a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.runtime.local.processes import gateway_pids, pid_alive
from tests.doubles.openai_upstream import openai_upstream
from tests.waiting import eventually_sync


class ControlPlaneProcess:
    """One ``tenantry up`` process; may be killed and started again on the same data dir."""

    def __init__(self, data_dir: Path, env: dict[str, str], args: Sequence[str] = ()) -> None:
        self.data_dir = data_dir
        self.env = env
        self.args = list(args)
        """More ``tenantry up`` arguments."""
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log = data_dir.parent / "control-plane.log"

    def start(self) -> None:
        endpoint_file = self.data_dir / "control-plane.json"
        endpoint_file.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "control_plane.cli.main",
                    "up",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    "0",
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

        def started() -> dict[str, Any] | None:
            assert self.process is not None
            assert self.process.poll() is None, self.log.read_text()
            try:
                info: dict[str, Any] = json.loads(endpoint_file.read_text())
            except (OSError, ValueError):
                return None
            return info if info["pid"] == self.process.pid else None

        self.url = eventually_sync(started, timeout=60, what="control plane up")["url"]

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def client(self) -> httpx.Client:
        token = (self.data_dir / "admin-token").read_text().strip()
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def all_gateway_pids(self) -> dict[str, list[int]]:
        gateways = self.data_dir / "gateways"
        if not gateways.exists():
            return {}
        return {d.name: gateway_pids(d) for d in gateways.iterdir() if gateway_pids(d)}


@pytest.fixture
def upstream_url() -> Iterator[str]:
    """An OpenAI-compatible model server on 127.0.0.1 (echoes the last user message)."""
    with openai_upstream() as upstream:
        yield upstream.url


@pytest.fixture
def control_plane_process(tmp_path: Path, upstream_url: str) -> Iterator[ControlPlaneProcess]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TENANTRY_")}
    env.update(
        TENANTRY_PLATFORM_MODELS_URL=upstream_url,
        TENANTRY_RESYNC_INTERVAL="0.5",
        TENANTRY_LOG_LEVEL="info",
    )
    cp = ControlPlaneProcess(tmp_path / "data", env)
    cp.start()
    yield cp
    if cp.process is not None and cp.process.poll() is None:
        cp.stop()
    leftovers = cp.all_gateway_pids()
    for pids in leftovers.values():
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"gateways left running after the control plane stopped: {leftovers}"
