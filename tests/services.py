"""Throwaway PostgreSQL and Redis servers for the test suite.

Everything here is plain Python with no pytest dependency, so the fixtures in
``tests/conftest.py`` stay thin: find the server binaries, pick a free port,
start the server in a temporary directory, poll it until it answers (with a
deadline, never a fixed sleep), and stop and delete it afterwards.

PostgreSQL refuses to run as root; when the tests run as root the cluster runs
as the unprivileged ``postgres`` user (created as ``tenantry-pg`` if no such
user exists).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

POSTGRES_INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, postgres) were not found on PATH nor under "
    "/usr/lib/postgresql/*/bin. Install them with `bash .ci/install-test-deps` "
    "(Debian: `apt-get install --no-install-recommends postgresql`), or point the tests "
    "at an existing server with TENANTRY_TEST_DATABASE_URL=postgresql://USER@HOST:PORT/DB "
    "(a role that may create databases)."
)
REDIS_INSTALL_HINT = (
    "redis-server was not found on PATH. Install it with `bash .ci/install-test-deps` "
    "(Debian: `apt-get install --no-install-recommends redis-server`), or point the tests "
    "at an existing server with TENANTRY_TEST_REDIS_URL=redis://HOST:PORT/DB "
    "(that database is flushed before and after every test)."
)


class ServiceError(RuntimeError):
    """A backing service could not be found, started or used."""


class ServiceExited(ServiceError):
    """A server process exited while it should be running."""


class RedisReplyError(ServiceError):
    """Redis answered a command with an error reply."""


# -- generic machinery ------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def poll_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout: float = STARTUP_TIMEOUT,
    interval: float = 0.05,
    retry_on: tuple[type[BaseException], ...] = (OSError,),
) -> None:
    """Call ``check`` until it returns true, or raise ``ServiceError`` at the deadline.

    Exceptions of the ``retry_on`` types count as "not ready yet"; any other
    exception (say, the server process died) propagates at once.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            if check():
                return
        except retry_on as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f": last error: {last_error}" if last_error else ""
            raise ServiceError(f"{what} was not ready within {timeout:.0f}s{detail}")
        time.sleep(interval)


@dataclass
class ServiceProcess:
    """A server running as a child process, writing to its own log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: signal.Signals

    @classmethod
    def start(
        cls,
        name: str,
        argv: list[str],
        log_path: Path,
        stop_signal: signal.Signals = signal.SIGTERM,
        **popen_kwargs: Any,
    ) -> ServiceProcess:
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                **popen_kwargs,
            )
        return cls(name, popen, log_path, stop_signal)

    def ensure_running(self) -> None:
        """Raise ``ServiceExited`` (with the log's tail) if the process has exited."""
        code = self.popen.poll()
        if code is not None:
            raise ServiceExited(f"{self.name} exited with status {code}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Ask the process to stop; kill it if it is still there at the deadline."""
        if self.popen.poll() is None:
            self.popen.send_signal(self.stop_signal)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_on_free_port(
    launch: Callable[[int], ServiceProcess],
    is_ours: Callable[[ServiceProcess, int], bool],
    *,
    what: str,
    retry_on: tuple[type[BaseException], ...],
    host: str = "127.0.0.1",
    attempts: int = 3,
) -> tuple[ServiceProcess, int]:
    """Start a server on a free port and wait until it answers as itself.

    A port that was free when picked can be taken before the server binds it:
    the server then exits (while another may answer on that port, which
    ``is_ours`` tells apart), and we try again on another port.
    """
    for attempt in range(1, attempts + 1):
        port = free_port(host)
        process = launch(port)

        def ready(process: ServiceProcess = process, port: int = port) -> bool:
            process.ensure_running()
            return is_ours(process, port)

        try:
            poll_until(ready, what=f"{what} on port {port}", retry_on=retry_on)
        except BaseException as exc:
            process.stop()
            if isinstance(exc, ServiceExited) and attempt < attempts:
                continue
            raise
        return process, port
    raise AssertionError("unreachable")


def _run(argv: list[str], what: str, **kwargs: Any) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ServiceError(f"{what} failed with status {result.returncode}:\n{output}")


# -- PostgreSQL -------------------------------------------------------------


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.name))


def find_postgres_bindir() -> Path | None:
    """Return a directory holding both ``initdb`` and ``postgres``, or None.

    Looks next to ``initdb``/``pg_ctl`` found on PATH first, then under
    ``/usr/lib/postgresql/<version>/bin`` (Debian's layout), newest first.
    """
    candidates: list[Path] = []
    for tool in ("initdb", "pg_ctl", "postgres"):
        found = shutil.which(tool)
        if found:
            candidates.append(Path(found).resolve().parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    return None


@dataclass(frozen=True)
class RunAs:
    """An unprivileged account for server processes started by root."""

    user: str
    uid: int
    gid: int

    def popen_kwargs(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def unprivileged_account(fallback_name: str = "tenantry-pg") -> RunAs | None:
    """None when not root; else the ``postgres`` account (created if missing)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", fallback_name):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return RunAs(name, entry.pw_uid, entry.pw_gid)
    _run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", fallback_name],
        f"creating the user {fallback_name}",
    )
    entry = pwd.getpwnam(fallback_name)
    return RunAs(fallback_name, entry.pw_uid, entry.pw_gid)


def postgres_data_directory(url: str) -> Path:
    """The data directory of the server at ``url`` (which proves which server answered)."""
    with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    return Path(row[0]).resolve()


@contextlib.contextmanager
def throwaway_postgres(host: str = "127.0.0.1") -> Iterator[str]:
    """Run a fresh PostgreSQL cluster; yield its superuser URL; stop and delete it after.

    Trust auth, TCP on ``host`` only, fsync off. Raises ``ServiceError`` with
    ``POSTGRES_INSTALL_HINT`` when no server binaries are installed.
    """
    bindir = find_postgres_bindir()
    if bindir is None:
        raise ServiceError(POSTGRES_INSTALL_HINT)
    account = unprivileged_account()
    as_owner = account.popen_kwargs() if account else {}
    workdir = Path(tempfile.mkdtemp(prefix="tenantry-pg-"))
    process: ServiceProcess | None = None
    try:
        if account:
            os.chown(workdir, account.uid, account.gid)
        datadir = workdir / "data"
        initdb = [str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres"]
        initdb += ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]
        _run(initdb, "initdb", cwd=workdir, **as_owner)

        def launch(port: int) -> ServiceProcess:
            settings = {
                "listen_addresses": host,
                "port": str(port),
                "unix_socket_directories": "",
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
            }
            argv = [str(bindir / "postgres"), "-D", str(datadir)]
            for key, value in settings.items():
                argv += ["-c", f"{key}={value}"]
            log = workdir / "postgres.log"
            # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients.
            return ServiceProcess.start(
                "postgres", argv, log, signal.SIGINT, cwd=workdir, **as_owner
            )

        def is_ours(_: ServiceProcess, port: int) -> bool:
            return postgres_data_directory(server_url(port)) == datadir.resolve()

        def server_url(port: int) -> str:
            return f"postgresql://postgres@{host}:{port}/postgres"

        process, port = start_on_free_port(
            launch, is_ours, what="PostgreSQL", retry_on=(psycopg.OperationalError,), host=host
        )
        yield server_url(port)
    finally:
        if process:
            process.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def psycopg_url(url: str) -> str:
    """Strip a SQLAlchemy driver suffix (``postgresql+psycopg://``) for psycopg."""
    scheme, sep, rest = url.partition("://")
    if scheme.startswith("postgresql+") or scheme.startswith("postgres+"):
        scheme = "postgresql"
    return scheme + sep + rest


def with_database(url: str, dbname: str) -> str:
    """Return ``url`` with its path (database name) replaced by ``dbname``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


OWNER_ROLE = "tenantry_owner"
APP_ROLE = "tenantry_app"
"""Roles the tests connect as: neither is a superuser nor bypasses row-level security, so
every PostgreSQL test runs with the policies in force. ``OWNER_ROLE`` owns each scratch
database (single-role installs, and migrations); ``APP_ROLE`` owns nothing (two-role
installs)."""


def ensure_roles(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for role in (OWNER_ROLE, APP_ROLE):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            if not exists:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS").format(
                        sql.Identifier(role)
                    )
                )


def as_role(url: str, role: str) -> str:
    """``url`` connecting as ``role`` (trust authentication, no password)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{role}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """Create an empty database ``t_<random>`` owned by ``OWNER_ROLE``; yield its URL as that
    role; drop it after."""
    admin_url = psycopg_url(server_url)
    ensure_roles(admin_url)
    dbname = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(dbname), sql.Identifier(OWNER_ROLE)
            )
        )
    try:
        yield as_role(with_database(admin_url, dbname), OWNER_ROLE)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )


# -- Redis ------------------------------------------------------------------


def _encode_command(args: tuple[str | bytes | int, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_reply(reader: BinaryIO) -> object:
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("Redis closed the connection")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RedisReplyError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        return None if size < 0 else reader.read(size + 2)[:-2]
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_read_reply(reader) for _ in range(count)]
    raise ServiceError(f"unexpected Redis reply: {line!r}")


def redis_command(url: str, *args: str | bytes | int, timeout: float = 5.0) -> object:
    """Send one command to the Redis at ``url`` (``redis://[[user]:pass@]host:port[/db]``).

    A minimal RESP client: authenticates and selects the URL's database first,
    returns the decoded reply, and raises ``RedisReplyError`` on an error reply.
    """
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise ServiceError(f"only redis:// URLs are supported, not {url!r}")
    setup: list[tuple[str | bytes | int, ...]] = []
    if parts.password is not None:
        user = unquote(parts.username) if parts.username else "default"
        setup.append(("AUTH", user, unquote(parts.password)))
    if parts.path.strip("/"):
        setup.append(("SELECT", parts.path.strip("/")))
    address = (parts.hostname or "127.0.0.1", parts.port or 6379)
    with (
        socket.create_connection(address, timeout=timeout) as sock,
        sock.makefile("rb") as reader,
    ):
        sock.sendall(b"".join(_encode_command(cmd) for cmd in [*setup, args]))
        for _ in setup:
            _read_reply(reader)
        return _read_reply(reader)


def find_redis_server() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(p, os.X_OK)),
        None,
    )


@contextlib.contextmanager
def throwaway_redis(host: str = "127.0.0.1") -> Iterator[str]:
    """Run a fresh, non-persistent redis-server; yield its URL; stop and delete it after."""
    binary = find_redis_server()
    if binary is None:
        raise ServiceError(REDIS_INSTALL_HINT)
    workdir = Path(tempfile.mkdtemp(prefix="tenantry-redis-"))
    process: ServiceProcess | None = None
    try:

        def launch(port: int) -> ServiceProcess:
            argv = [binary, "--port", str(port), "--bind", host, "--dir", str(workdir)]
            argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
            return ServiceProcess.start("redis-server", argv, workdir / "redis.log", cwd=workdir)

        def is_ours(process: ServiceProcess, port: int) -> bool:
            info = redis_command(f"redis://{host}:{port}", "INFO", "server", timeout=1.0)
            return f"process_id:{process.popen.pid}\r\n".encode() in cast(bytes, info)

        process, port = start_on_free_port(
            launch, is_ours, what="Redis", retry_on=(OSError, RedisReplyError), host=host
        )
        yield f"redis://{host}:{port}/0"
    finally:
        if process:
            process.stop()
        shutil.rmtree(workdir, ignore_errors=True)
