"""Runs, watches, adopts and stops gateway child processes for the embedded default.

Each tenant's gateway is supervised by a monitor task: when the process dies unasked, the
monitor restarts it with exponential backoff, and after ``max_restarts`` crashes within
``restart_window`` it gives up and reports ``gateway.crash_looping`` (the reconciler marks the
tenant failed and retries later). Gateways run in their own session, so they outlive a
control plane that is killed; the next control plane adopts them after checking that
``/readyz`` names the right tenant.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from control_plane.runtime.base import (
    GatewayListener,
    GatewaySpec,
    GatewayStatus,
    RuntimeFailure,
)
from control_plane.runtime.local import processes
from control_plane.settings import Settings
from tenant_gateway.contract import (
    IDENTITY_FILE,
    LOG_FILE,
    STATE_FILE,
    GatewayState,
    Readiness,
)

log = logging.getLogger(__name__)

EXIT_ALREADY_RUNNING = 75
_POLL = 0.02
_SPAWN_ATTEMPTS = 3


async def _no_listener(_tenant_id: str, _type: str, _message: str, _data: dict[str, Any]) -> None:
    return None


class _Gateway:
    """One tenant's gateway as the runtime tracks it."""

    def __init__(self, tenant_id: str, runtime_dir: Path, data_dir: Path) -> None:
        self.tenant_id = tenant_id
        self.runtime_dir = runtime_dir
        self.data_dir = data_dir
        self.pid: int | None = None
        self.port: int | None = None
        self.wanted = False
        self.monitor: asyncio.Task[None] | None = None
        self.crashes: collections.deque[float] = collections.deque()
        self.lock = asyncio.Lock()

    def alive(self) -> bool:
        return self.pid is not None and processes.pid_alive(self.pid)


class LocalRuntime:
    def __init__(self, settings: Settings, *, gateway_command: list[str] | None = None) -> None:
        self.settings = settings
        self.config = settings.local
        self.command = gateway_command or [sys.executable, "-m", "tenant_gateway"]
        self._gateways: dict[str, _Gateway] = {}
        self._listener: GatewayListener = _no_listener
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(2.0), trust_env=False)

    # -- paths and bookkeeping -------------------------------------------------------------

    def _gateway(self, tenant_id: str) -> _Gateway:
        gateway = self._gateways.get(tenant_id)
        if gateway is None:
            gateway = _Gateway(
                tenant_id,
                self.settings.gateways_dir / tenant_id,
                self.settings.volumes_dir / tenant_id,
            )
            self._gateways[tenant_id] = gateway
        return gateway

    def _endpoint(self, port: int) -> str:
        return _http_url(self.config.gateway_host, port)

    # -- Runtime interface -----------------------------------------------------------------

    async def start(self, listener: GatewayListener) -> None:
        self._listener = listener
        self.settings.gateways_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.settings.volumes_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    async def ensure_running(self, spec: GatewaySpec) -> GatewayStatus:
        gateway = self._gateway(spec.tenant_id)
        async with gateway.lock:
            # The identity first: a gateway that sees a new bundle may unseal at once.
            if spec.identity_token is not None:
                await asyncio.to_thread(
                    processes.write_secret_file,
                    gateway.runtime_dir / IDENTITY_FILE,
                    spec.identity_token.encode(),
                )
            await asyncio.to_thread(processes.write_bundle, gateway.runtime_dir, spec.bundle)
            gateway.wanted = True
            if gateway.alive() and gateway.port is not None:
                self._watch(gateway)
                return GatewayStatus(
                    tenant_id=spec.tenant_id, endpoint=self._endpoint(gateway.port)
                )
            gateway.crashes.clear()
            adopted = await self._adopt(gateway)
            if not adopted:
                await self._spawn(gateway)
            self._watch(gateway)
            assert gateway.port is not None
            return GatewayStatus(
                tenant_id=spec.tenant_id, endpoint=self._endpoint(gateway.port), adopted=adopted
            )

    async def stop(self, tenant_id: str) -> None:
        gateway = self._gateway(tenant_id)
        gateway.wanted = False
        async with gateway.lock:
            await self._cancel_monitor(gateway)
            await self._terminate(gateway)

    async def remove(self, tenant_id: str) -> None:
        await self.stop(tenant_id)
        gateway = self._gateways.pop(tenant_id)
        await asyncio.to_thread(shutil.rmtree, gateway.runtime_dir, True)
        if not self.config.retain_data:
            await asyncio.to_thread(shutil.rmtree, gateway.data_dir, True)

    async def reap(self, live_tenant_ids: set[str]) -> list[str]:
        reaped: list[str] = []
        if not self.settings.gateways_dir.exists():
            return reaped
        for entry in sorted(self.settings.gateways_dir.iterdir()):
            if entry.is_dir() and entry.name not in live_tenant_ids:
                log.warning("removing gateway of unknown tenant %s", entry.name)
                await self.remove(entry.name)
                reaped.append(entry.name)
        return reaped

    async def close(self) -> None:
        gateways = list(self._gateways.values())
        for gateway in gateways:
            await self._cancel_monitor(gateway)
        if self.config.stop_gateways_on_exit:
            await asyncio.gather(*(self._terminate(g) for g in gateways), return_exceptions=True)
        await self._http.aclose()

    # -- starting and adopting -------------------------------------------------------------

    async def _adopt(self, gateway: _Gateway) -> bool:
        """Take over a gateway that is already running for this tenant, if there is one."""
        if not await asyncio.to_thread(processes.lock_held, gateway.runtime_dir):
            return False
        # A gateway holds the lock: it runs, or is still starting (its control plane died
        # mid-spawn), or is dying (killed a moment ago). Wait for it to report ready rather
        # than start a second one; if it lets go of the lock first, there is nothing to adopt.
        try:
            state = await self._await_ready(gateway, pid=None)
        except _LockReleased:
            log.info("the gateway holding tenant %s's lock went away", gateway.tenant_id)
            return False
        gateway.pid = state.pid
        gateway.port = state.port
        log.info("adopted gateway of tenant %s (pid %s)", gateway.tenant_id, state.pid)
        return True

    async def _spawn(self, gateway: _Gateway) -> None:
        gateway.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        gateway.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        previous = processes.read_state(gateway.runtime_dir)
        # Ask for the port it had, so the tenant's endpoint survives restarts.
        preferred = gateway.port or (previous.port if previous else 0)
        argv = [
            *self.command,
            "--runtime-dir",
            str(gateway.runtime_dir),
            "--data-dir",
            str(gateway.data_dir),
            "--host",
            self.config.gateway_host,
            "--port",
            str(preferred),
        ]
        for _attempt in range(_SPAWN_ATTEMPTS):
            with contextlib.suppress(FileNotFoundError):
                (gateway.runtime_dir / STATE_FILE).unlink()
                log.debug("removed stale state of tenant %s", gateway.tenant_id)
            pid = processes.spawn(argv, gateway.runtime_dir / LOG_FILE, _gateway_environment())
            log.debug("started gateway of tenant %s as pid %d", gateway.tenant_id, pid)
            gateway.pid = pid
            try:
                state = await self._await_ready(gateway, pid=pid)
            except _AlreadyRunning:
                # Another gateway took the lock first: adopt it, or, if it went away
                # meanwhile, start ours again.
                gateway.pid = None
                if await self._adopt(gateway):
                    return
                continue
            except RuntimeFailure:
                await self._terminate(gateway)
                raise
            gateway.port = state.port
            return
        raise RuntimeFailure(
            f"another process kept taking the gateway lock ({_SPAWN_ATTEMPTS} start attempts)"
        )

    async def _await_ready(self, gateway: _Gateway, pid: int | None) -> GatewayState:
        """Until the gateway ``pid`` (or, with None, whichever holds the lock) is ready.

        With ``pid`` None, raises :class:`_LockReleased` as soon as no process holds the
        lock: a ``state.json`` left by a killed gateway must not be waited on.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.ready_timeout
        while True:
            if pid is not None and not processes.pid_alive(pid):
                code = processes.reap(pid)
                if code == EXIT_ALREADY_RUNNING:
                    raise _AlreadyRunning
                tail = processes.log_tail(gateway.runtime_dir)
                raise RuntimeFailure(
                    f"{processes.describe_exit(code)} while starting"
                    + (f": {tail.splitlines()[-1]}" if tail else "")
                )
            if pid is None and not processes.lock_held(gateway.runtime_dir):
                raise _LockReleased
            state = processes.read_state(gateway.runtime_dir)
            if (
                state is not None
                and (pid is None or state.pid == pid)
                and processes.pid_alive(state.pid)
                and await self._ready(state, gateway.tenant_id)
            ):
                return state
            if loop.time() >= deadline:
                raise RuntimeFailure(
                    f"gateway did not become ready within {self.config.ready_timeout:g}s"
                )
            await asyncio.sleep(_POLL)

    async def _ready(self, state: GatewayState, tenant_id: str) -> bool:
        try:
            response = await self._http.get(f"{_http_url(state.host, state.port)}/readyz")
        except httpx.HTTPError as exc:
            log.debug("readiness probe of tenant %s's gateway failed: %r", tenant_id, exc)
            return False
        if response.status_code != 200:
            return False
        try:
            readiness = Readiness(**response.json())
        except (ValueError, TypeError):
            return False
        return readiness.tenant_id == tenant_id

    # -- supervision -----------------------------------------------------------------------

    def _watch(self, gateway: _Gateway) -> None:
        if gateway.monitor is None or gateway.monitor.done():
            gateway.monitor = asyncio.create_task(
                self._monitor(gateway), name=f"gateway-monitor-{gateway.tenant_id}"
            )

    async def _monitor(self, gateway: _Gateway) -> None:
        try:
            await self._supervise(gateway)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("supervision of tenant %s's gateway failed", gateway.tenant_id)

    async def _emit(self, tenant_id: str, event_type: str, message: str, **data: Any) -> None:
        """Tell the listener; its failure must not end supervision."""
        try:
            await self._listener(tenant_id, event_type, message, data)
        except Exception:
            log.exception("could not record %s for tenant %s", event_type, tenant_id)

    async def _supervise(self, gateway: _Gateway) -> None:
        while gateway.wanted and gateway.pid is not None:
            code = await processes.wait_exit(gateway.pid)
            if not gateway.wanted:
                return
            reason = processes.describe_exit(code)
            tail = processes.log_tail(gateway.runtime_dir, lines=5)
            while gateway.wanted:
                now = time.monotonic()
                gateway.crashes.append(now)
                while gateway.crashes and now - gateway.crashes[0] > self.config.restart_window:
                    gateway.crashes.popleft()
                if len(gateway.crashes) >= self.config.max_restarts:
                    gateway.wanted = False
                    await self._emit(
                        gateway.tenant_id,
                        "gateway.crash_looping",
                        f"gateway crashed {len(gateway.crashes)} times within "
                        f"{self.config.restart_window:g}s; last: {reason}",
                        log_tail=tail,
                    )
                    return
                delay = min(0.5 * 2 ** (len(gateway.crashes) - 1), 30.0)
                await self._emit(
                    gateway.tenant_id,
                    "gateway.crashed",
                    f"{reason}; restarting in {delay:g}s",
                    exit_code=code,
                    log_tail=tail,
                )
                await asyncio.sleep(delay)
                try:
                    async with gateway.lock:
                        if not gateway.wanted:
                            return
                        # The reconciler may have started it again meanwhile; else we do.
                        if not gateway.alive() and not await self._adopt(gateway):
                            await self._spawn(gateway)
                except RuntimeFailure as exc:
                    reason = exc.reason
                    code = None
                    continue
                await self._emit(
                    gateway.tenant_id,
                    "gateway.restarted",
                    f"gateway restarted on port {gateway.port}",
                    endpoint=self._endpoint(gateway.port or 0),
                )
                break

    async def _cancel_monitor(self, gateway: _Gateway) -> None:
        task, gateway.monitor = gateway.monitor, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _terminate(self, gateway: _Gateway) -> None:
        pids = set(await asyncio.to_thread(processes.gateway_pids, gateway.runtime_dir))
        if gateway.pid is not None and gateway.alive():
            pids.add(gateway.pid)
        await asyncio.gather(*(processes.terminate(pid, self.config.stop_timeout) for pid in pids))
        gateway.pid = None


def _http_url(host: str, port: int) -> str:
    """A URL that reaches a server bound to ``host`` (a wildcard address means loopback)."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class _AlreadyRunning(Exception):
    """The spawned gateway found another one holding the tenant's lock."""


class _LockReleased(Exception):
    """The gateway being adopted let go of the tenant's lock before it was ready."""


def _gateway_environment() -> dict[str, str]:
    """The environment a gateway inherits: ours minus every control-plane setting.

    A gateway gets what it needs through its bundle; it must never see the control plane's
    database URL, key ring or tokens.
    """
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TENANTRY_") or name.startswith("TENANTRY_GATEWAY_")
    }
