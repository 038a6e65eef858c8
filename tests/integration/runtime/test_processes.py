"""Process handling of the local runtime against real child processes."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import sys
import time
from pathlib import Path

import msgspec

from control_plane.runtime.local import processes
from tenant_gateway.contract import GatewayBundle
from tests.waiting import eventually


def spawn_python(code: str, tmp_path: Path) -> int:
    return processes.spawn([sys.executable, "-c", code], tmp_path / "child.log", {})


async def test_exit_codes_and_signals_are_reported(tmp_path: Path) -> None:
    pid = spawn_python("import sys; print('bye'); sys.exit(3)", tmp_path)
    assert await asyncio.wait_for(processes.wait_exit(pid), 10) == 3
    assert processes.describe_exit(3) == "gateway exited with code 3"
    assert (tmp_path / "child.log").read_text().strip() == "bye"

    pid = spawn_python("import time; time.sleep(60)", tmp_path)
    os.kill(pid, signal.SIGKILL)
    code = await asyncio.wait_for(processes.wait_exit(pid), 10)
    assert code == -9
    assert processes.describe_exit(code) == "gateway was killed by signal 9"
    assert not processes.pid_alive(pid)


async def test_terminate_escalates_to_sigkill(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    pid = spawn_python(stubborn, tmp_path)

    async def ready() -> bool:
        return "ready" in (tmp_path / "child.log").read_text()

    await eventually(ready, timeout=10, what="child ignoring SIGTERM")
    started = time.monotonic()
    await processes.terminate(pid, timeout=0.5)
    assert time.monotonic() - started >= 0.5, "SIGTERM was given its grace period"
    assert not processes.pid_alive(pid)


async def test_terminate_is_quick_for_a_cooperative_process(tmp_path: Path) -> None:
    pid = spawn_python("import time; time.sleep(60)", tmp_path)
    started = time.monotonic()
    await processes.terminate(pid, timeout=10)
    assert time.monotonic() - started < 5
    assert not processes.pid_alive(pid)


def test_bundle_is_replaced_atomically_and_only_when_changed(tmp_path: Path) -> None:
    bundle = GatewayBundle(
        tenant_id="t",
        tenant_slug="t",
        keys=[],
        key_digest_key="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )
    assert processes.write_bundle(tmp_path, bundle) is True
    before = (tmp_path / "bundle.json").stat()
    assert processes.write_bundle(tmp_path, bundle) is False
    assert (tmp_path / "bundle.json").stat().st_mtime_ns == before.st_mtime_ns
    changed = GatewayBundle(
        tenant_id="t",
        tenant_slug="t",
        keys=[],
        key_digest_key="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        platform_models_url="http://m/v1",
    )
    assert processes.write_bundle(tmp_path, changed) is True
    read = msgspec.json.decode((tmp_path / "bundle.json").read_bytes(), type=GatewayBundle)
    assert read == changed
    assert (tmp_path / "bundle.json").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["bundle.json"], "no temp files left"


def test_lock_held_only_while_a_process_holds_it(tmp_path: Path) -> None:
    assert processes.lock_held(tmp_path) is False  # no lock file yet
    with (tmp_path / "gateway.lock").open("w") as handle:
        assert processes.lock_held(tmp_path) is False
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert processes.lock_held(tmp_path) is True
    assert processes.lock_held(tmp_path) is False
