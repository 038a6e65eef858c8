"""The processes benchmarks run against: the upstream stub and a real ``tenantry up``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec

from tenant_gateway.contract import GatewayState

CHAT_BODY = {"model": "stub-model", "messages": [{"role": "user", "content": "hello"}]}


def wait(probe: Any, timeout: float, what: str, interval: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


@contextmanager
def upstream() -> Iterator[str]:
    """The OpenAI-compatible stub as its own process, so it does not share our GIL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.doubles.openai_upstream", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    try:
        if not line.startswith("listening "):
            raise RuntimeError(f"upstream stub did not start: {line!r}")
        yield line.split(" ", 1)[1]
    finally:
        process.terminate()
        process.wait(timeout=10)


def readyz(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class ControlPlane:
    """``tenantry up`` on the embedded default, with ``settings`` (``TENANTRY_*``) on top."""

    def __init__(self, root: Path, upstream_url: str, port: int = 0, **settings: str) -> None:
        self.data_dir = root / "control-plane"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
        env.update(TENANTRY_PLATFORM_MODELS_URL=upstream_url, TENANTRY_LOG_LEVEL="warning")
        env.update(settings)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "control_plane.cli.main",
                "up",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        endpoint = self.data_dir / "control-plane.json"

        def started() -> dict[str, Any] | None:
            try:
                return json.loads(endpoint.read_text())  # type: ignore[no-any-return]
            except (OSError, ValueError):
                return None

        self.url = wait(started, 60, "control plane", interval=0.05)["url"]
        token = (self.data_dir / "admin-token").read_text().strip()
        self.headers = {"Authorization": f"Bearer {token}"}

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)

    def gateway_pid(self, tenant_id: str) -> int:
        state = msgspec.json.decode(
            (self.data_dir / "gateways" / tenant_id / "state.json").read_bytes(), type=GatewayState
        )
        return state.pid
