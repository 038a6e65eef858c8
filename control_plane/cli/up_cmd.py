"""``tenantry up``: the control plane with the local runtime, on SQLite by default."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import socket
import sys
from collections.abc import Callable

import msgspec
import uvicorn
import uvloop

from control_plane.app import create_app
from control_plane.cli import fleet_cmd, logs
from control_plane.errors import SettingsError
from control_plane.fleet import FleetError
from control_plane.settings import Settings, load_settings
from control_plane.vault.errors import VaultError

log = logging.getLogger("tenantry")

ENDPOINT_FILE = "control-plane.json"


class ControlPlaneEndpoint(msgspec.Struct):
    """Written to ``DIR/control-plane.json`` so the CLI and scripts find a running server."""

    url: str
    pid: int


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def _announce_token(settings: Settings) -> Callable[[str], None]:
    def announce(token: str) -> None:
        print(
            "\nFirst admin token (shown once; also saved to "
            f"{settings.admin_token_file}, mode 0600):\n\n    {token}\n",
            flush=True,
        )

    return announce


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(data_dir=args.data_dir, host=args.host, port=args.port)
    except SettingsError as exc:
        print(f"tenantry: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        settings, fleet = fleet_cmd.fleet_for_up(settings, args)
    except (SettingsError, FleetError) as exc:
        print(f"tenantry: {exc}", file=sys.stderr)
        return 2
    try:
        sock = _listen(settings.host, settings.port)
    except OSError as exc:
        print(f"tenantry: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    url = f"http://{host}:{port}"
    if settings.internal_url is None:
        internal_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else host
        settings = dataclasses.replace(settings, internal_url=f"http://{internal_host}:{port}")
    try:
        app = create_app(settings, on_first_token=_announce_token(settings))
    except (SettingsError, VaultError) as exc:
        sock.close()
        print(f"tenantry: {exc}", file=sys.stderr)
        return 2

    def started() -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        (settings.data_dir / ENDPOINT_FILE).write_bytes(
            msgspec.json.encode(ControlPlaneEndpoint(url=url, pid=os.getpid()))
        )
        database = "SQLite" if settings.database_url.startswith("sqlite") else "PostgreSQL"
        print(
            f"Tenantry control plane listening on {url} "
            f"(runtime {settings.runtime}, {database}, data in {settings.data_dir})",
            flush=True,
        )

    app.on_startup.append(started)
    if fleet is not None:
        fleet_cmd.attach(app, fleet)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    uvloop.run(server.serve(sockets=[sock]))
    return 0 if server.started else 1
