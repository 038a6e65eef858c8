"""``tenantry login``: a person's session for the CLI, kept in ``DIR/cli-credentials.json``.

The file (mode 0600) holds the control plane's URL and the token pair. Commands that call
the API use it when no ``--token``/``TENANTRY_TOKEN`` is given, refreshing the access token
when it has expired (the refresh token rotates, so the file is rewritten each time).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

CREDENTIALS_FILE = "cli-credentials.json"


def add_parser(commands: Any) -> None:
    login = commands.add_parser("login", help="log in as a person; the CLI keeps the session")
    login.add_argument("--email", required=True)
    login.add_argument("--url", help="control plane URL (default $TENANTRY_URL or the local one)")
    login.add_argument("--data-dir", help="where to keep the session (default .tenantry)")
    login.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    login.set_defaults(run=run)


def data_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("TENANTRY_DATA_DIR") or ".tenantry")


def control_plane_url(url: str | None, directory: Path) -> str:
    url = url or os.environ.get("TENANTRY_URL")
    if url:
        return url
    try:
        return str(json.loads((directory / "control-plane.json").read_text())["url"])
    except (OSError, ValueError, KeyError):
        return "http://127.0.0.1:8080"


def read_password(from_stdin: bool, prompt: str = "Password: ") -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass(prompt)


def save(directory: Path, url: str, pair: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / CREDENTIALS_FILE
    record = {
        "url": url,
        "access_token": pair["access_token"],
        "refresh_token": pair["refresh_token"],
        "expires_at": time.time() + float(pair["expires_in"]) - 30,
    }
    temporary = path.with_name(f".{CREDENTIALS_FILE}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle)
    os.replace(temporary, path)
    return path


def session_token(directory: Path, url: str) -> str | None:
    """The saved session's access token for ``url`` (refreshed if expired), or None."""
    path = directory / CREDENTIALS_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("url") != url:
        return None
    if time.time() < float(record.get("expires_at", 0)):
        return str(record["access_token"])
    try:
        answer = httpx.post(
            f"{url}/api/v1/auth/refresh",
            json={"refresh_token": record["refresh_token"]},
            timeout=30.0,
        )
    except httpx.HTTPError:
        return None
    if answer.status_code != 200:
        return None
    save(directory, url, answer.json())
    return str(answer.json()["access_token"])


def run(args: argparse.Namespace) -> int:
    directory = data_dir(args.data_dir)
    url = control_plane_url(args.url, directory)
    password = read_password(args.password_stdin)
    try:
        answer = httpx.post(
            f"{url}/api/v1/auth/login",
            json={"email": args.email, "password": password},
            timeout=30.0,
        )
    except httpx.HTTPError as exc:
        print(f"tenantry: cannot reach the control plane at {url} ({exc})", file=sys.stderr)
        return 1
    if answer.status_code != 200:
        try:
            detail = answer.json().get("detail", answer.text)
        except ValueError:
            detail = answer.text
        print(f"tenantry: login refused ({answer.status_code}): {detail}", file=sys.stderr)
        return 1
    path = save(directory, url, answer.json())
    print(f"logged in as {args.email}; session kept in {path}")
    return 0
