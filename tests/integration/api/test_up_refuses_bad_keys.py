"""``tenantry up`` with an unusable key setting stops with a message naming the variable,
not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.environment import without_settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TENANTRY_KEK", "k1:not-base64!"),
        ("TENANTRY_JWT_KEYS", "j1:c2hvcnQ="),
        ("TENANTRY_TOKEN_HASH_KEY", "too-short"),
    ],
)
def test_a_bad_key_is_named_and_nothing_starts(tmp_path: Path, variable: str, value: str) -> None:
    env = {**without_settings(), variable: value}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "control_plane.cli.main",
            "up",
            "--data-dir",
            str(tmp_path),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"tenantry: {variable}: ")
    assert "Traceback" not in result.stderr
