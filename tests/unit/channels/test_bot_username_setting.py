"""The platform bot's username, named in pairing instructions, is read from its variable."""

from __future__ import annotations

import pytest

from control_plane.errors import SettingsError
from control_plane.settings import load_settings

VARIABLE = "TENANTRY_TELEGRAM_PLATFORM_BOT_USERNAME"


def test_the_username_is_taken_with_or_without_its_at() -> None:
    assert load_settings({VARIABLE: "@tenantry_bot"}).telegram_platform_bot_username == (
        "tenantry_bot"
    )
    assert load_settings({VARIABLE: "TenantryBot"}).telegram_platform_bot_username == (
        "TenantryBot"
    )
    assert load_settings({}).telegram_platform_bot_username is None


@pytest.mark.parametrize("value", ["tenantry", "a bot", "x" * 40 + "bot", "1tenantrybot"])
def test_a_value_that_is_no_bot_username_names_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match=VARIABLE):
        load_settings({VARIABLE: value})


TOKEN = "TENANTRY_TELEGRAM_PLATFORM_BOT_TOKEN"


def test_the_platform_bot_token_is_read_and_kept_out_of_the_settings_repr() -> None:
    token = "123456789:AAH-planted_platform_secret_0123456789"
    settings = load_settings({TOKEN: token, "TENANTRY_PUBLIC_URL": "https://t.example.com/"})
    assert settings.telegram_platform_bot_token == token
    assert settings.public_url == "https://t.example.com"
    assert token not in repr(settings)
    assert load_settings({}).telegram_platform_bot_token is None
    assert load_settings({}).public_url is None


def test_a_malformed_token_names_the_variable_without_echoing_it() -> None:
    with pytest.raises(SettingsError, match=TOKEN) as caught:
        load_settings({TOKEN: "not-a-token-secretvalue"})
    assert "secretvalue" not in str(caught.value)


def test_a_public_url_must_be_http() -> None:
    with pytest.raises(SettingsError, match="TENANTRY_PUBLIC_URL"):
        load_settings({"TENANTRY_PUBLIC_URL": "ftp://x"})
