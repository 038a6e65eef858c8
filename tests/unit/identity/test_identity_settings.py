"""Identity settings: defaults, and a bad value refused with the variable's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.errors import SettingsError
from control_plane.settings import load_settings


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=str(tmp_path))
    assert settings.jwt_keys is None
    assert settings.jwt_keys_file == tmp_path / "jwt-keys"
    assert settings.access_token_ttl == 900
    assert settings.refresh_token_ttl == 30 * 86400
    assert (settings.login_attempts_per_account, settings.login_attempts_per_address) == (5, 20)
    assert settings.login_window == 900


def test_values_are_read(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "TENANTRY_JWT_KEYS": " k1:AAAA ",
            "TENANTRY_ACCESS_TOKEN_TTL": "300",
            "TENANTRY_REFRESH_TOKEN_TTL": "86400",
            "TENANTRY_LOGIN_ATTEMPTS_PER_ACCOUNT": "3",
            "TENANTRY_LOGIN_ATTEMPTS_PER_ADDRESS": "50",
            "TENANTRY_LOGIN_WINDOW": "60",
        },
        data_dir=str(tmp_path),
    )
    assert settings.jwt_keys == "k1:AAAA"
    assert "AAAA" not in repr(settings)
    assert (settings.access_token_ttl, settings.refresh_token_ttl) == (300, 86400)
    assert (settings.login_attempts_per_account, settings.login_attempts_per_address) == (3, 50)
    assert settings.login_window == 60


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TENANTRY_ACCESS_TOKEN_TTL", "soon"),
        ("TENANTRY_ACCESS_TOKEN_TTL", "5"),
        ("TENANTRY_ACCESS_TOKEN_TTL", "inf"),
        ("TENANTRY_REFRESH_TOKEN_TTL", "nan"),
        ("TENANTRY_REFRESH_TOKEN_TTL", "10"),
        ("TENANTRY_LOGIN_ATTEMPTS_PER_ACCOUNT", "0"),
        ("TENANTRY_LOGIN_ATTEMPTS_PER_ACCOUNT", "five"),
        ("TENANTRY_LOGIN_ATTEMPTS_PER_ADDRESS", "-1"),
        ("TENANTRY_LOGIN_WINDOW", "0"),
    ],
)
def test_a_bad_value_names_its_variable(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({variable: value}, data_dir=str(tmp_path))
    assert refused.value.variable == variable
    assert str(refused.value).startswith(f"{variable}: ")
