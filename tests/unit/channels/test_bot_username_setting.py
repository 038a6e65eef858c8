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
