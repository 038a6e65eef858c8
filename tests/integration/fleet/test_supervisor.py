"""The fleet supervisor against a real child process: the vLLM stand-in over real HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from control_plane.fleet import FleetGaveUp, events
from control_plane.fleet.errors import FleetCommandMissing
from control_plane.fleet.supervisor import FleetRecord
from control_plane.runtime.local.processes import pid_alive
from tests.integration.fleet.conftest import Fleet
from tests.waiting import eventually

FleetOf = Callable[..., Any]


async def test_readiness_waits_for_health_and_reports_what_it_waits_for(
    fleet_of: FleetOf, tmp_path: Path
) -> None:
    loaded = tmp_path / "loaded"
    async with fleet_of("--ready-file", str(loaded), served_model_name="local-llm") as fleet:

        async def reported_loading() -> list[events.Loading]:
            return [e for e in fleet.of(events.Loading) if "Loading" in e.last_output]

        loading = (await eventually(reported_loading, what="a loading report"))[0]
        assert loading.waiting_for == "not listening yet"
        assert loading.timeout == 60
        assert not fleet.supervisor.ready.is_set()
        assert fleet.supervisor.state == "starting"

        loaded.touch()
        pid = await fleet.ready()
        [ready] = fleet.of(events.Ready)
        assert ready.pid == pid
        assert ready.base_url == fleet.supervisor.spec.base_url
        record = msgspec.json.decode(fleet.supervisor.record_path.read_bytes(), type=FleetRecord)
        assert (record.state, record.pid, record.served_model_name) == ("ready", pid, "local-llm")
        async with httpx.AsyncClient(base_url=ready.base_url) as client:
            models = (await client.get("/models")).json()
            assert [m["id"] for m in models["data"]] == ["local-llm"]
            reply = await client.post(
                "/chat/completions",
                json={"model": "local-llm", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert reply.json()["choices"][0]["message"]["content"] == "echo: hi"
    assert fleet.of(events.Crashed) == []


async def test_a_start_that_misses_its_deadline_counts_as_a_crash(
    fleet_of: FleetOf, tmp_path: Path
) -> None:
    never = tmp_path / "never"
    async with fleet_of("--ready-file", str(never), ready_timeout=1.0, max_restarts=1) as fleet:
        assert fleet.task is not None
        with pytest.raises(FleetGaveUp) as caught:
            await asyncio.wait_for(fleet.task, 60)
    assert "not healthy within 1s (not listening yet)" in str(caught.value)
    assert not pid_alive(fleet.pids[0])


async def test_a_killed_server_is_restarted(fleet_of: FleetOf) -> None:
    async with fleet_of() as fleet:
        first = await fleet.ready()
        os.kill(first, signal.SIGKILL)

        async def restarted() -> int | None:
            pid = fleet.supervisor.pid
            return pid if fleet.supervisor.ready.is_set() and pid != first else None

        second = await eventually(restarted, what="a new healthy vLLM")
        assert not pid_alive(first)
        [crash] = fleet.of(events.Crashed)
        assert crash.pid == first
        assert "was killed by SIGKILL" in crash.reason
        assert (crash.crashes, crash.restart_in) == (1, 0.05)
        assert fleet.pids == [first, second]
        async with httpx.AsyncClient() as client:
            assert (await client.get(fleet.supervisor.spec.health_url)).status_code == 200


async def test_a_server_that_turns_unhealthy_is_replaced(fleet_of: FleetOf, tmp_path: Path) -> None:
    sick = tmp_path / "sick"
    async with fleet_of("--unhealthy-file", str(sick)) as fleet:
        first = await fleet.ready()
        sick.touch()

        async def replaced() -> list[events.Crashed]:
            return fleet.of(events.Crashed)

        [crash] = await eventually(replaced, what="the unhealthy vLLM replaced")
        assert crash.reason == "vLLM was unhealthy (answered 503) 2 times in a row"
        assert not pid_alive(first)
        sick.unlink()

        async def healthy_again() -> int | None:
            pid = fleet.supervisor.pid
            return pid if fleet.supervisor.ready.is_set() and pid != first else None

        await eventually(healthy_again, what="a healthy replacement")


async def test_a_crash_loop_gives_up_with_a_clear_message(fleet_of: FleetOf) -> None:
    async with fleet_of("--exit-code", "3", max_restarts=3) as fleet:
        assert fleet.task is not None
        with pytest.raises(FleetGaveUp) as caught:
            await asyncio.wait_for(fleet.task, 60)
    message = str(caught.value)
    assert message.startswith("vLLM crashed 3 times within 120s")
    assert "vLLM ended while loading: it exited with code 3" in message
    assert message.endswith("not restarting")
    crashes = fleet.of(events.Crashed)
    assert [c.restart_in for c in crashes] == [0.05, 0.1]
    [gave_up] = fleet.of(events.GaveUp)
    assert gave_up.crashes == 3
    assert fleet.supervisor.state == "failed"
    assert len(fleet.pids) == 3
    assert not any(pid_alive(pid) for pid in fleet.pids)
    assert "stand-in exits with code 3" in fleet.supervisor.log_path.read_text()


async def test_a_clean_stop_leaves_no_process(fleet_of: FleetOf) -> None:
    async with fleet_of() as fleet:
        pid = await fleet.ready()
        await fleet.stop()
    assert not pid_alive(pid)
    assert fleet.of(events.Stopped) == [events.Stopped(exit_code=-signal.SIGTERM)]
    assert fleet.supervisor.state == "stopped"
    assert not fleet.supervisor.record_path.exists()


async def test_a_server_ignoring_sigterm_is_killed(fleet_of: FleetOf) -> None:
    async with fleet_of("--ignore-sigterm", stop_timeout=0.5) as fleet:
        pid = await fleet.ready()
        await fleet.stop()
    assert not pid_alive(pid)
    assert fleet.of(events.Stopped) == [events.Stopped(exit_code=-signal.SIGKILL)]
    assert "ignoring SIGTERM" in fleet.supervisor.log_path.read_text()


async def test_a_stop_while_loading_ends_the_load(fleet_of: FleetOf, tmp_path: Path) -> None:
    async with fleet_of("--ready-file", str(tmp_path / "never")) as fleet:

        async def loading() -> list[events.Loading]:
            return fleet.of(events.Loading)

        await eventually(loading, what="vLLM loading")
        await fleet.stop()
    assert not pid_alive(fleet.pids[0])
    assert fleet.of(events.Ready) == []
    assert fleet.supervisor.state == "stopped"


async def test_a_missing_executable_is_named(make_fleet: Callable[..., Fleet]) -> None:
    fleet = make_fleet()
    fleet.supervisor.argv[0] = "/nonexistent/vllm"
    with pytest.raises(FleetCommandMissing) as caught:
        await fleet.supervisor.run()
    assert "/nonexistent/vllm" in str(caught.value)
    assert "pip install 'tenantry[fleet]'" in str(caught.value)
