"""Operating-system facts about gateway processes: liveness, identity, files, signals."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import tempfile
from pathlib import Path

import msgspec

from tenant_gateway.contract import (
    BUNDLE_FILE,
    LOCK_FILE,
    LOG_FILE,
    STATE_FILE,
    GatewayBundle,
    GatewayState,
)


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def runs_gateway_for(pid: int, runtime_dir: Path) -> bool:
    """True if ``pid`` is a gateway started for ``runtime_dir`` (guards against pid reuse)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return pid_alive(pid)
    return os.fsencode(str(runtime_dir)) in args


def gateway_pids(runtime_dir: Path) -> list[int]:
    """Every live process started for ``runtime_dir``, found through /proc."""
    wanted = os.fsencode(str(runtime_dir))
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in args and b"--runtime-dir" in args and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def lock_held(runtime_dir: Path) -> bool:
    """True while a live gateway holds the runtime dir's lock."""
    path = runtime_dir / LOCK_FILE
    if not path.exists():
        return False
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def read_state(runtime_dir: Path) -> GatewayState | None:
    try:
        return msgspec.json.decode((runtime_dir / STATE_FILE).read_bytes(), type=GatewayState)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def write_bundle(runtime_dir: Path, bundle: GatewayBundle) -> bool:
    """Atomically replace ``bundle.json`` if its content changed; True if it did."""
    runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return write_secret_file(runtime_dir / BUNDLE_FILE, msgspec.json.encode(bundle))


def write_secret_file(path: Path, content: bytes) -> bool:
    """Atomically replace ``path`` (mode 0600) if its content changed; True if it did."""
    runtime_dir = path.parent
    runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        if path.read_bytes() == content:
            return False
    fd, tmp = tempfile.mkstemp(dir=runtime_dir, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True


def log_tail(runtime_dir: Path, lines: int = 10) -> str:
    """The last lines the gateway wrote, to explain why it failed."""
    try:
        with (runtime_dir / LOG_FILE).open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def spawn(argv: list[str], log_path: Path, env: dict[str, str]) -> int:
    """Start ``argv`` in a new session with stdout and stderr appended to ``log_path``.

    ``posix_spawn`` leaves no ``Popen`` object behind: the control plane may exit and leave
    the gateway running (to be adopted later) without the child being killed or warned about.
    """
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return os.posix_spawnp(
            argv[0],
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(log_fd)


def reap(pid: int) -> int | None:
    """Collect a child that has ended; its exit code (negative: killed by that signal).

    None when ``pid`` is not our child (an adopted gateway) or is still running.
    """
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if done else None


async def wait_exit(pid: int) -> int | None:
    """Until ``pid`` ends; returns its exit code when it was our child.

    Uses a pidfd (readable when the process ends), which works for children and for
    adopted gateways alike; falls back to polling where pidfds are unavailable.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return reap(pid)
    except OSError:
        while pid_alive(pid):
            await asyncio.sleep(0.25)
        return reap(pid)
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def on_end() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(pidfd, on_end)
    try:
        await ended
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return reap(pid)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "gateway exited"
    if code < 0:
        return f"gateway was killed by signal {-code}"
    return f"gateway exited with code {code}"


async def terminate(pid: int, timeout: float) -> None:
    """SIGTERM, then SIGKILL if ``pid`` is still alive after ``timeout`` seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while pid_alive(pid):
        if loop.time() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        await asyncio.sleep(0.02)
    deadline = loop.time() + 5
    while pid_alive(pid) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    reap(pid)
