"""``python -m tenant_gateway`` (and ``tenantry gateway``): run one tenant's gateway.

The start follows the contract with the runtime (:mod:`tenant_gateway.contract`):

1. take ``gateway.lock`` in the runtime dir with ``flock`` and keep it for the life of the
   process; if another gateway holds it, exit 75 (``EX_TEMPFAIL``);
2. read ``bundle.json``; missing or invalid, exit 78 (``EX_CONFIG``);
3. bind the listening socket (the asked port, else any free one), so the port is known;
4. serve the app with uvicorn and, once the app has started, write ``state.json``
   atomically; remove it when shutting down. SIGTERM or SIGINT stop the gateway gracefully
   and it exits 0.

What only serving needs (Litestar, uvicorn, httpx, prometheus_client) is imported after
the checks, so a gateway that cannot run says so quickly; nothing touches the network
before the socket is served.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from tenant_gateway.contract import BUNDLE_FILE, LOCK_FILE, STATE_FILE, GatewayState
from tenant_gateway.keys import BundleError, read_bundle
from tenant_gateway.redaction import RedactSecrets
from tenant_gateway.settings import GatewaySettings, SettingsError, load_settings

if TYPE_CHECKING:
    from litestar import Litestar

log = logging.getLogger("tenant_gateway")

EXIT_OK = 0
EXIT_STARTUP_FAILED = 70  # EX_SOFTWARE: the app failed to start
EXIT_CANNOT_LISTEN = 71  # EX_OSERR: no socket could be bound
EXIT_ALREADY_RUNNING = 75  # EX_TEMPFAIL: another gateway holds the runtime dir's lock
EXIT_BAD_CONFIG = 78  # EX_CONFIG: no usable bundle or settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenant_gateway", description="Run the gateway of one tenant."
    )
    parser.add_argument(
        "--runtime-dir",
        required=True,
        type=Path,
        help="directory with bundle.json; the gateway writes state.json and holds gateway.lock",
    )
    parser.add_argument(
        "--data-dir",
        required=True,
        type=Path,
        help="the tenant's volume (conversations.sqlite3 is kept there)",
    )
    parser.add_argument(
        "--bundle-dir",
        type=Path,
        default=None,
        help=(
            "directory with bundle.json and identity-token, read only (default: the runtime"
            " dir); on Kubernetes, the mounted sealed-bundle Secret"
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=0, help="port to listen on; 0, or taken, picks a free one"
    )
    return parser


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and a traceback if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_text is None and record.exc_info:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # as the redaction filter left it
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return msgspec.json.encode(entry).decode()


def _configure_logging(level: str) -> None:
    """JSON lines on stderr (the runtime's ``gateway.log``), secrets masked: every shape
    :mod:`tenant_gateway.redaction` knows, and every value this gateway has unsealed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _fail(message: str, code: int) -> int:
    print(f"tenant_gateway: {message}", file=sys.stderr, flush=True)
    return code


def _take_lock(path: Path) -> int | None:
    """The fd holding the runtime dir's lock, or None if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    # For people looking: who holds it. Whoever held it before is gone.
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _bind(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; on any free port if ``port`` is taken."""
    try:
        return _bind(host, port)
    except OSError as exc:
        if port == 0:
            raise
        log.warning("port %d is not available (%s); listening on a free port", port, exc)
        return _bind(host, 0)


def write_state(runtime_dir: Path, state: GatewayState) -> None:
    """Write ``state.json`` atomically: a temp file in the same dir, then a rename."""
    fd, tmp = tempfile.mkstemp(dir=runtime_dir, prefix=".state-", suffix=".json")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(msgspec.json.encode(state))
        os.replace(tmp, runtime_dir / STATE_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_state(runtime_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (runtime_dir / STATE_FILE).unlink()


def _serve(
    app: Litestar,
    sock: socket.socket,
    settings: GatewaySettings,
    on_started: Callable[[], None],
    on_stopping: Callable[[], None],
) -> bool:
    """Serve ``app`` on ``sock`` until SIGTERM or SIGINT; True if it had started."""
    import asyncio
    import signal
    from collections.abc import Iterator

    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                on_started()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            on_stopping()  # stop advertising before draining
            await super().shutdown(sockets=sockets)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises the signal after a graceful stop, so the process would die
            # of it; the gateway exits 0 instead.
            loop = asyncio.get_running_loop()
            signals = (signal.SIGTERM, signal.SIGINT)
            for sig in signals:
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
            try:
                yield
            finally:
                for sig in signals:
                    loop.remove_signal_handler(sig)

    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level=settings.log_level,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
    )
    server = Server(config)
    server.run(sockets=[sock])
    return server.started


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runtime_dir: Path = args.runtime_dir.absolute()
    data_dir: Path = args.data_dir.absolute()
    bundle_dir: Path = (args.bundle_dir or args.runtime_dir).absolute()
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        return _fail(exc.detail, EXIT_BAD_CONFIG)
    _configure_logging(settings.log_level)

    if not runtime_dir.is_dir():
        return _fail(f"runtime dir {runtime_dir} does not exist", EXIT_BAD_CONFIG)
    try:
        lock_fd = _take_lock(runtime_dir / LOCK_FILE)
    except OSError as exc:
        return _fail(f"cannot open {runtime_dir / LOCK_FILE}: {exc}", EXIT_BAD_CONFIG)
    if lock_fd is None:
        return _fail(
            f"another gateway is running for {runtime_dir} (it holds {LOCK_FILE})",
            EXIT_ALREADY_RUNNING,
        )
    # lock_fd stays open until the process ends, however it ends: the kernel then lets go.
    try:
        bundle = read_bundle(bundle_dir / BUNDLE_FILE)
    except BundleError as exc:
        return _fail(exc.detail, EXIT_BAD_CONFIG)

    try:
        sock = listen(args.host, args.port)
    except OSError as exc:
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc}", EXIT_CANNOT_LISTEN)
    host, port = args.host, sock.getsockname()[1]

    from tenant_gateway.app import create_app
    from tenant_gateway.keys import BundleSource
    from tenant_gateway.models import ModelClient
    from tenant_gateway.store import DATABASE_FILE, ConversationStore

    app = create_app(
        settings,
        BundleSource(bundle_dir / BUNDLE_FILE, bundle, interval=settings.bundle_poll_interval),
        ConversationStore(data_dir / DATABASE_FILE),
        ModelClient(settings),
    )

    serving = True

    async def keep_state(state: GatewayState) -> None:
        # state.json is how a runtime finds and adopts this gateway: should it vanish while
        # the gateway serves (a runtime clearing what it took for a stale file), put it back.
        import asyncio

        while serving:
            await asyncio.sleep(0.5)
            if serving and not (runtime_dir / STATE_FILE).exists():
                write_state(runtime_dir, state)

    def started() -> None:
        import asyncio

        state = GatewayState(
            tenant_id=bundle.tenant_id,
            pid=os.getpid(),
            host=host,
            port=port,
            started_at=time.time(),
        )
        write_state(runtime_dir, state)
        app.state["state_keeper"] = asyncio.get_running_loop().create_task(keep_state(state))
        log.info("gateway of tenant %s listening on %s:%d", bundle.tenant_id, host, port)

    def stopping() -> None:
        nonlocal serving
        serving = False
        keeper = app.state.get("state_keeper")
        if keeper is not None:
            keeper.cancel()
        remove_state(runtime_dir)

    try:
        ok = _serve(app, sock, settings, started, stopping)
    except SystemExit:  # uvicorn exits when the app's startup fails
        ok = False
    except Exception:
        log.exception("the gateway stopped on an error")  # through the redaction filter
        ok = False
    finally:
        remove_state(runtime_dir)
        sock.close()
    if not ok:
        # The last line of the log is what a runtime reports as the reason.
        cause = app.state.get("startup_error") or "see the messages above"
        return _fail(f"the gateway failed to start: {cause}", EXIT_STARTUP_FAILED)
    return EXIT_OK
