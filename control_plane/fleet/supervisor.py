"""Keeping one vLLM server up: start, wait for health, watch, restart with backoff, give up.

A life of the child: it is spawned; ``GET /health`` is polled until it answers 200 (loading a
model can take minutes, so progress is reported as it goes) or ``ready_timeout`` passes; then
it is checked every ``health_interval`` seconds. A life ends in a *crash* when the process
exits, misses its readiness deadline, or fails ``unhealthy_after`` checks in a row; the
process group is stopped and the child is started again after a delay that doubles with each
crash within ``restart_window``. At ``max_restarts`` crashes within the window the supervisor
gives up (:class:`~control_plane.fleet.errors.FleetGaveUp`). :meth:`FleetSupervisor.stop`
ends it cleanly: SIGTERM, SIGKILL after ``stop_timeout``.

``DIR/fleet/fleet.json`` says what runs (URL, model, state, pid) while the supervisor lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
import msgspec

from control_plane.fleet import events, process
from control_plane.fleet.command import VllmServe, child_environment, vllm_argv
from control_plane.fleet.errors import FleetGaveUp
from control_plane.fleet.health import read_health
from control_plane.settings import FleetSettings

FleetState = Literal["starting", "ready", "restarting", "failed", "stopped"]
_PROBE_TIMEOUT = 2.0


class FleetRecord(msgspec.Struct):
    """Written to ``DIR/fleet/fleet.json`` so scripts find the running fleet."""

    base_url: str
    model: str
    served_model_name: str
    state: str
    pid: int | None
    supervisor_pid: int


class CrashLog:
    """Crash times within a sliding window."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._times: deque[float] = deque()

    def record(self, now: float) -> int:
        """Count a crash at ``now``; the crashes within the window, this one included."""
        self._times.append(now)
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        return len(self._times)


def restart_delay(crashes: int, first: float, cap: float) -> float:
    """Seconds before the restart after the ``crashes``-th crash within the window."""
    return float(min(cap, first * 2 ** max(0, crashes - 1)))


class FleetSupervisor:
    """Runs one :class:`VllmServe` until :meth:`stop`, or until it keeps crashing."""

    def __init__(
        self,
        spec: VllmServe,
        settings: FleetSettings,
        *,
        fleet_dir: Path,
        on_event: events.EventSink | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.argv = vllm_argv(spec)
        self.log_path = fleet_dir / "vllm.log"
        self.record_path = fleet_dir / "fleet.json"
        self.state: FleetState = "starting"
        self.pid: int | None = None
        self.ready = asyncio.Event()
        """Set while vLLM answers healthy."""
        self._env = child_environment(os.environ if environ is None else environ)
        self.on_event: events.EventSink = on_event or (lambda event: None)
        """Told each step as it happens."""
        self._crashes = CrashLog(settings.restart_window)
        self._stopping = asyncio.Event()
        self._client: httpx.AsyncClient | None = None

    def stop(self) -> None:
        """Ask :meth:`run` to stop vLLM and return (call from the supervisor's loop)."""
        self._stopping.set()

    async def run(self) -> None:
        """Until :meth:`stop`; raises :class:`FleetGaveUp` when vLLM crashes too often."""
        attempt = 0
        exit_code: int | None = None
        async with httpx.AsyncClient(trust_env=False) as self._client:
            try:
                while not self._stopping.is_set():
                    attempt += 1
                    crash, exit_code = await self._life(attempt)
                    if crash is None:
                        break
                    await self._after_crash(crash)
            finally:
                self.ready.clear()
                self.pid = None
        if self.state != "failed":
            self.state = "stopped"
            self.record_path.unlink(missing_ok=True)
            self.on_event(events.Stopped(exit_code))

    async def _after_crash(self, reason: str) -> None:
        crashes = self._crashes.record(time.monotonic())
        if crashes >= self.settings.max_restarts:
            self._set_state("failed")
            self.on_event(events.GaveUp(reason, crashes, self.settings.restart_window))
            raise FleetGaveUp(crashes, self.settings.restart_window, reason)
        delay = restart_delay(crashes, self.settings.restart_delay, self.settings.restart_delay_max)
        self._set_state("restarting")
        self.on_event(
            events.Crashed(self.pid or 0, reason, crashes, self.settings.max_restarts, delay)
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _life(self, attempt: int) -> tuple[str | None, int | None]:
        """One child from spawn to its end: the crash reason (None: stopped) and exit code."""
        since = process.log_size(self.log_path)
        child = await process.spawn(self.argv, self.log_path, self._env)
        self.pid = child.pid
        self._set_state("starting")
        self.on_event(events.Spawned(child.pid, attempt, self.log_path))
        exited = asyncio.ensure_future(child.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            crash = await self._until_ready(child.pid, exited, stopping, since)
            if crash is None and not self._stopping.is_set():
                crash = await self._while_ready(exited, stopping)
            ended_by_itself = exited.done()
        finally:
            self.ready.clear()
            stopping.cancel()
            code = await process.stop(child, self.settings.stop_timeout)
        if crash is None:
            return None, code
        if ended_by_itself:
            crash = f"{crash}: it {process.describe_exit(code)}"
        return crash, code

    async def _pause(self, seconds: float, *watched: asyncio.Future[Any]) -> None:
        """Pacing between checks that ends early when the child exits or a stop is asked."""
        await asyncio.wait(watched, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)

    async def _until_ready(
        self,
        pid: int,
        exited: asyncio.Future[int],
        stopping: asyncio.Future[Any],
        since: int,
    ) -> str | None:
        """Poll ``/health`` until 200: None when ready (or stopping), else the crash."""
        assert self._client is not None
        timeout = self.settings.ready_timeout
        started = time.monotonic()
        reported_at: float | None = None
        reported: str | None = None
        while not self._stopping.is_set():
            if exited.done():
                return "vLLM ended while loading"
            left = started + timeout - time.monotonic()
            reading = await read_health(
                self._client, self.spec.health_url, max(0.1, min(_PROBE_TIMEOUT, left))
            )
            now = time.monotonic()
            if reading.healthy:
                self._set_state("ready")
                self.ready.set()
                self.on_event(events.Ready(pid, now - started, self.spec.base_url))
                return None
            if exited.done():
                continue
            if now - started >= timeout:
                return f"vLLM was not healthy within {timeout:g}s ({reading.detail})"
            due = reported_at is None or now - reported_at >= self.settings.progress_interval
            if due or reading.detail != reported:
                output = process.last_output(self.log_path, since)
                self.on_event(events.Loading(pid, now - started, timeout, reading.detail, output))
                reported_at, reported = now, reading.detail
            await self._pause(self.settings.probe_interval, exited, stopping)
        return None

    async def _while_ready(
        self, exited: asyncio.Future[int], stopping: asyncio.Future[Any]
    ) -> str | None:
        """Health checks of a ready child: None when stopping, else the crash."""
        assert self._client is not None
        failures = 0
        while True:
            await self._pause(self.settings.health_interval, exited, stopping)
            if self._stopping.is_set():
                return None
            if exited.done():
                return "vLLM ended"
            reading = await read_health(self._client, self.spec.health_url, _PROBE_TIMEOUT)
            failures = 0 if reading.healthy else failures + 1
            if failures >= self.settings.unhealthy_after:
                return f"vLLM was unhealthy ({reading.detail}) {failures} times in a row"

    def _set_state(self, state: FleetState) -> None:
        self.state = state
        record = FleetRecord(
            base_url=self.spec.base_url,
            model=self.spec.model,
            served_model_name=self.spec.model_name,
            state=state,
            pid=self.pid,
            supervisor_pid=os.getpid(),
        )
        self.record_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.record_path.with_name(f".{self.record_path.name}.tmp")
        temporary.write_bytes(msgspec.json.encode(record))
        temporary.replace(self.record_path)
