"""Operating-system side of the fleet: start vLLM, stop it, read its output, check its port.

vLLM starts in a session of its own, so a stop reaches its engine and worker processes as
one group, and a terminal's Ctrl-C reaches only the supervisor, which then stops vLLM in
order. On Linux it also dies with the supervisor (``PR_SET_PDEATHSIG``): a supervisor killed
with SIGKILL leaves no model server holding the GPU. Its output is appended to a log file
directly (no pipe through the supervisor), so a busy or stopped supervisor never stalls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from control_plane.fleet.errors import FleetCommandMissing, FleetPortTaken

_PR_SET_PDEATHSIG = 1
# Looked up before any fork: the child must not load libraries between fork and exec.
_prctl = (
    getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform == "linux" else None
)


def _die_with(parent: int) -> Callable[[], None]:
    """Runs in the child before exec: SIGKILL when ``parent`` ends, even if it already has."""

    def arm() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return arm


async def spawn(
    argv: Sequence[str], log_path: Path, env: Mapping[str, str]
) -> asyncio.subprocess.Process:
    """Start ``argv`` with stdout and stderr appended to ``log_path`` (mode 0600)."""
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_fd,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
            preexec_fn=_die_with(os.getpid()),
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise FleetCommandMissing(argv[0], exc.strerror or type(exc).__name__) from exc
    finally:
        os.close(log_fd)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def stop(process: asyncio.subprocess.Process, timeout: float) -> int:
    """SIGTERM to vLLM's process group, SIGKILL after ``timeout`` seconds; its exit code.

    Whatever the leader's end, what is left of the group is killed, so no engine process
    outlives it (the group id stays reserved while any member lives, so it names no
    stranger).
    """
    if process.returncode is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            _signal_group(process.pid, signal.SIGKILL)
    code = await process.wait()
    _signal_group(process.pid, signal.SIGKILL)
    return code


def describe_exit(code: int | None) -> str:
    if code is None:
        return "ended"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


def log_size(log_path: Path) -> int:
    try:
        return log_path.stat().st_size
    except OSError:
        return 0


def last_output(log_path: Path, since: int, limit: int = 200) -> str:
    """The last line written to ``log_path`` after offset ``since`` (progress bars' carriage
    returns count as line ends), cut to ``limit`` characters."""
    try:
        with log_path.open("rb") as handle:
            handle.seek(max(since, log_size(log_path) - 8192))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    last = next((line for line in reversed(lines) if line), "")
    return last if len(last) <= limit else last[: limit - 1] + "…"


def claim_port(host: str, port: int) -> int:
    """Check that ``host:port`` is free (0: find a free port); the port to give vLLM.

    The port is released again before vLLM binds it, so another program could take it in
    between; vLLM would then fail to start and say so in its log.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise FleetPortTaken(host, port, exc.strerror or str(exc)) from exc
        bound: int = sock.getsockname()[1]
        return bound
