"""A fleet supervisor running the vLLM stand-in, and what it reported."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from control_plane.fleet import FleetSupervisor, VllmServe, events
from control_plane.fleet.process import claim_port
from control_plane.runtime.local.processes import pid_alive
from control_plane.settings import FleetSettings
from tests.doubles.vllm_standin import standin_command, standin_environment

E = TypeVar("E")

QUICK = FleetSettings(
    ready_timeout=60.0,
    stop_timeout=10.0,
    max_restarts=5,
    restart_window=120.0,
    restart_delay=0.05,
    restart_delay_max=0.5,
    health_interval=0.1,
    unhealthy_after=2,
    probe_interval=0.05,
    progress_interval=0.5,
)
"""Settings that keep a test short: quick checks, restarts and reports."""


class Fleet:
    """One supervisor of the stand-in, the events it reported and its ``run()`` task."""

    def __init__(self, supervisor: FleetSupervisor) -> None:
        self.supervisor = supervisor
        self.events: list[events.FleetEvent] = []
        supervisor.on_event = self.events.append
        self.task: asyncio.Task[None] | None = None

    def of(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]

    @property
    def pids(self) -> list[int]:
        return [event.pid for event in self.of(events.Spawned)]

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.supervisor.run())

    async def ready(self, timeout: float = 60) -> int:
        await asyncio.wait_for(self.supervisor.ready.wait(), timeout)
        assert self.supervisor.pid is not None
        return self.supervisor.pid

    async def stop(self) -> None:
        self.supervisor.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 60)


@pytest.fixture
def make_fleet(tmp_path: Path) -> Callable[..., Fleet]:
    """``make_fleet(*stand-in options, **settings)``: a supervisor, not started yet."""

    def make(*options: str, served_model_name: str | None = None, **settings: Any) -> Fleet:
        spec = VllmServe(
            model="org/test-model",
            port=claim_port("127.0.0.1", 0),
            served_model_name=served_model_name,
            extra_args=options,
            command=standin_command(),
        )
        supervisor = FleetSupervisor(
            spec,
            replace(QUICK, **settings),
            fleet_dir=tmp_path / "fleet",
            environ=standin_environment(),
        )
        return Fleet(supervisor)

    return make


@pytest.fixture
async def fleet_of(make_fleet: Callable[..., Fleet]) -> AsyncIterator[Callable[..., Any]]:
    """``async with fleet_of(*options, **settings) as fleet:`` runs it for the block; after
    it, whatever the test did, no stand-in it started may be left running."""
    started: list[Fleet] = []

    @asynccontextmanager
    async def running(*options: str, **settings: Any) -> AsyncIterator[Fleet]:
        fleet = make_fleet(*options, **settings)
        started.append(fleet)
        fleet.start()
        try:
            yield fleet
        finally:
            if fleet.task is not None and not fleet.task.done():
                await fleet.stop()

    yield running
    for fleet in started:
        left = [pid for pid in fleet.pids if pid_alive(pid)]
        assert not left, f"stand-ins left running: {left}"
