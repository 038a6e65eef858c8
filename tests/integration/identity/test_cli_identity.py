"""The CLI's side of identity, through ``main()``: ``tenantry users create-admin`` writes a
platform admin into the embedded default's database, and ``tenantry login`` keeps a 0600
session that ``tenantry tenants`` uses and refreshes once the access token has expired
(against a real HTTP double of the control plane's auth API)."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from control_plane.cli import login_cmd
from control_plane.cli.main import main

PASSWORD = "a long enough password"


@pytest.fixture(autouse=True)
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own TENANTRY_* settings must not reach the CLI under test."""
    for name in list(os.environ):
        if name.startswith("TENANTRY_"):
            monkeypatch.delenv(name)


def stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def admins(data_dir: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(data_dir / "tenantry.db") as db:
        return list(db.execute("SELECT email, platform_admin FROM users"))


def test_create_admin_reads_the_password_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    stdin(monkeypatch, PASSWORD + "\n")
    argv = ["users", "--data-dir", str(data_dir), "create-admin", "--email", "Root@Example.com"]
    assert main([*argv, "--password-stdin"]) == 0
    assert "platform admin root@example.com created" in capsys.readouterr().out
    assert admins(data_dir) == [("root@example.com", 1)]
    stored = sqlite3.connect(data_dir / "tenantry.db").execute("SELECT password_hash FROM users")
    assert PASSWORD not in str(stored.fetchall())

    stdin(monkeypatch, PASSWORD + "\n")
    assert main([*argv, "--password-stdin"]) == 1
    assert "exists" in capsys.readouterr().err


def test_create_admin_prompts_twice_and_applies_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    argv = ["users", "--data-dir", str(data_dir), "create-admin", "--email", "root@example.com"]
    typed = iter([PASSWORD, PASSWORD + "!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    assert main(argv) == 2
    assert "the passwords differ" in capsys.readouterr().err

    typed = iter(["too short", "too short"])
    assert main(argv) == 1
    assert "at least 12 characters" in capsys.readouterr().err
    assert admins(data_dir) == []

    typed = iter([PASSWORD, PASSWORD])
    assert main(argv) == 0
    assert admins(data_dir) == [("root@example.com", 1)]


@dataclass
class AuthDouble:
    """The control plane's login, refresh and tenant list, as a real HTTP server."""

    url: str = ""
    calls: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    issued: int = 0
    refuse_refresh: bool = False

    def pair(self) -> dict[str, Any]:
        self.issued += 1
        return {
            "access_token": f"access-{self.issued}",
            "refresh_token": f"tnt_rt_refresh-{self.issued}",
            "token_type": "Bearer",
            "expires_in": 900,
        }

    def answer(self, method: str, path: str, body: dict[str, Any], auth: str) -> tuple[int, Any]:
        self.calls.append((path, body, auth))
        if path == "/api/v1/auth/login":
            if body.get("password") != PASSWORD:
                return 401, {"detail": "email or password is wrong"}
            return 200, self.pair()
        if path == "/api/v1/auth/refresh":
            expected = f"tnt_rt_refresh-{self.issued}"
            if self.refuse_refresh or body.get("refresh_token") != expected:
                return 401, {"detail": "the session has ended; log in again"}
            return 200, self.pair()
        if method == "GET" and path.startswith("/api/v1/tenants"):
            return 200, {"items": [], "next_cursor": None}
        return 404, {"detail": "not here"}


@pytest.fixture
def double() -> Iterator[AuthDouble]:
    state = AuthDouble()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            path = self.path.split("?")[0]
            status, payload = state.answer(
                self.command, path, body, self.headers.get("authorization", "")
            )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def login(double: AuthDouble, data_dir: Path) -> int:
    argv = ["login", "--url", double.url, "--data-dir", str(data_dir)]
    return main([*argv, "--email", "ann@example.com", "--password-stdin"])


def test_login_keeps_a_private_session_that_tenants_commands_use(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    double: AuthDouble,
) -> None:
    data_dir = tmp_path / "data"
    stdin(monkeypatch, "wrong password\n")
    assert login(double, data_dir) == 1
    assert "email or password is wrong" in capsys.readouterr().err
    assert not (data_dir / login_cmd.CREDENTIALS_FILE).exists()

    stdin(monkeypatch, PASSWORD + "\n")
    assert login(double, data_dir) == 0
    session_file = data_dir / login_cmd.CREDENTIALS_FILE
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    assert json.loads(session_file.read_text())["refresh_token"] == "tnt_rt_refresh-1"

    tenants = ["tenants", "--url", double.url, "--data-dir", str(data_dir), "--json", "list"]
    assert main(tenants) == 0
    assert double.calls[-1][2] == "Bearer access-1"
    assert not any(path == "/api/v1/auth/refresh" for path, _, _ in double.calls)

    # The access token has expired: the next command refreshes it first, and keeps the new pair.
    record = json.loads(session_file.read_text())
    session_file.write_text(json.dumps({**record, "expires_at": 0}))
    assert main(tenants) == 0
    refreshes = [body for path, body, _ in double.calls if path == "/api/v1/auth/refresh"]
    assert refreshes == [{"refresh_token": "tnt_rt_refresh-1"}]
    assert double.calls[-1][2] == "Bearer access-2"
    assert json.loads(session_file.read_text())["refresh_token"] == "tnt_rt_refresh-2"
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600


def test_an_ended_session_is_not_used(tmp_path: Path, double: AuthDouble) -> None:
    data_dir = tmp_path / "data"
    login_cmd.save(data_dir, double.url, double.pair())
    assert login_cmd.session_token(data_dir, "http://elsewhere.invalid") is None
    record = json.loads((data_dir / login_cmd.CREDENTIALS_FILE).read_text())
    (data_dir / login_cmd.CREDENTIALS_FILE).write_text(json.dumps({**record, "expires_at": 0}))
    double.refuse_refresh = True
    assert login_cmd.session_token(data_dir, double.url) is None
