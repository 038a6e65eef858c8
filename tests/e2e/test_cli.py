"""The ``tenantry tenants`` commands against a running ``tenantry up``, as an admin uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.conftest import ControlPlaneProcess

pytestmark = pytest.mark.slow


def tenantry(cp: ControlPlaneProcess, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
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
        env=env or {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")},
        check=False,
    )
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
    base = [
        sys.executable,
        "-m",
        "control_plane.cli.main",
        "tenants",
        "--data-dir",
        str(cp.data_dir),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
    bad_slug = subprocess.run(
        [*base, "create", "Bad_Slug"], capture_output=True, text=True, env=env, check=False
    )
    assert bad_slug.returncode == 1
    assert "422" in bad_slug.stderr
    assert "not a DNS label" in bad_slug.stderr

    missing = subprocess.run(
        [*base, "get", "nobody"], capture_output=True, text=True, env=env, check=False
    )
    assert missing.returncode == 1
    assert "404: no tenant 'nobody'" in missing.stderr

    wrong_token = subprocess.run(
        [*base, "--token", "tnt_admin_wrong", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert wrong_token.returncode == 1
    assert "401" in wrong_token.stderr

    unreachable = subprocess.run(
        [*base, "--url", "http://127.0.0.1:9", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert unreachable.returncode == 1
    assert "cannot reach the control plane" in unreachable.stderr
