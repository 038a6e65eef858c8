"""The ``tenantry tenants`` commands against a running ``tenantry up``, as an admin uses them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.conftest import ControlPlaneProcess
from tests.environment import without_settings

pytestmark = pytest.mark.slow


def run_tenants(cp: ControlPlaneProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "control_plane.cli.main",
            "tenants",
            "--data-dir",
            str(cp.data_dir),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=without_settings(),
        check=False,
    )


def tenantry(cp: ControlPlaneProcess, *args: str) -> str:
    result = run_tenants(cp, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_create_list_get_delete(control_plane_process: ControlPlaneProcess) -> None:
    cp = control_plane_process
    created = tenantry(cp, "create", "cli-demo", "--plan", "pro", "--wait")
    assert "tenant.created" in created, "--wait shows the provisioning progress"
    assert "tenant.running" in created
    assert "state:       running" in created
    assert "Gateway key (shown once): tgk_" in created

    listing = tenantry(cp, "list")
    assert listing.splitlines()[0].split() == ["SLUG", "STATE", "PLAN", "ENDPOINT", "ID"]
    assert any(line.split()[:3] == ["cli-demo", "running", "pro"] for line in listing.splitlines())

    shown = json.loads(tenantry(cp, "--json", "get", "cli-demo"))
    assert shown["state"] == "running"
    assert shown["endpoint"].startswith("http://127.0.0.1:")

    deleted = tenantry(cp, "delete", "cli-demo", "--wait")
    assert "state:       deleted" in deleted
    assert "cli-demo" not in tenantry(cp, "list")


def test_errors_are_explained(control_plane_process: ControlPlaneProcess) -> None:
    cp = control_plane_process
    bad_slug = run_tenants(cp, "create", "Bad_Slug")
    assert bad_slug.returncode == 1
    assert "422" in bad_slug.stderr
    assert "not a DNS label" in bad_slug.stderr

    missing = run_tenants(cp, "get", "nobody")
    assert missing.returncode == 1
    assert "404: no tenant 'nobody'" in missing.stderr

    wrong_token = run_tenants(cp, "--token", "tnt_admin_wrong", "list")
    assert wrong_token.returncode == 1
    assert "401" in wrong_token.stderr

    unreachable = run_tenants(cp, "--url", "http://127.0.0.1:9", "list")
    assert unreachable.returncode == 1
    assert "cannot reach the control plane" in unreachable.stderr


def cli(cp: ControlPlaneProcess, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control_plane.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        env=without_settings(),
        check=False,
    )


def test_a_person_logs_in_and_the_cli_acts_as_them(
    control_plane_process: ControlPlaneProcess,
) -> None:
    cp = control_plane_process
    password = "a long enough password\n"
    made = cli(
        cp,
        "users",
        "--data-dir",
        str(cp.data_dir),
        "create-admin",
        "--email",
        "root@example.com",
        "--password-stdin",
        stdin=password,
    )
    assert made.returncode == 0, made.stderr
    assert "platform admin root@example.com created" in made.stdout
    again = cli(
        cp,
        "users",
        "--data-dir",
        str(cp.data_dir),
        "create-admin",
        "--email",
        "root@example.com",
        "--password-stdin",
        stdin=password,
    )
    assert again.returncode == 1
    assert "exists" in again.stderr

    wrong = cli(
        cp,
        "login",
        "--data-dir",
        str(cp.data_dir),
        "--email",
        "root@example.com",
        "--password-stdin",
        stdin="not the password\n",
    )
    assert wrong.returncode == 1
    assert "email or password is wrong" in wrong.stderr

    logged_in = cli(
        cp,
        "login",
        "--data-dir",
        str(cp.data_dir),
        "--email",
        "root@example.com",
        "--password-stdin",
        stdin=password,
    )
    assert logged_in.returncode == 0, logged_in.stderr
    session_file = cp.data_dir / "cli-credentials.json"
    assert session_file.stat().st_mode & 0o777 == 0o600
    assert "tnt_admin_" not in session_file.read_text()

    tenantry(cp, "create", "by-a-person")
    with cp.client() as admin:
        entries = admin.get("/api/v1/audit", params={"action": "tenant.create"}).json()
    creator = [e for e in entries if e["target"] == "by-a-person"]
    assert [e["actor_type"] for e in creator] == ["user"], "the CLI used the person's session"
