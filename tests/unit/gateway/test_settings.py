"""The gateway's settings: typed, read once, and a bad value names its variable."""

from __future__ import annotations

import pytest

from tenant_gateway.settings import SettingsError, load_settings


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.platform_models_url is None
    assert settings.log_level == "warning"
    assert settings.bundle_poll_interval == 0.5


def test_values_are_read_and_normalised() -> None:
    settings = load_settings(
        {
            "TENANTRY_PLATFORM_MODELS_URL": " http://vllm:8000/v1/ ",
            "TENANTRY_GATEWAY_LOG_LEVEL": "DEBUG",
        }
    )
    assert settings.platform_models_url == "http://vllm:8000/v1"
    assert settings.log_level == "debug"


def test_the_platform_fleet_is_called_with_aiohttp_unless_told_httpx() -> None:
    assert load_settings({}).upstream_client == "aiohttp"
    assert load_settings({"TENANTRY_GATEWAY_UPSTREAM_CLIENT": " HTTPX "}).upstream_client == "httpx"


def test_empty_values_mean_unset() -> None:
    settings = load_settings({"TENANTRY_PLATFORM_MODELS_URL": "", "TENANTRY_GATEWAY_LOG_LEVEL": ""})
    assert (settings.platform_models_url, settings.log_level) == (None, "warning")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TENANTRY_PLATFORM_MODELS_URL", "ftp://models/v1", "expected a URL"),
        ("TENANTRY_PLATFORM_MODELS_URL", "vllm:8000", "expected a URL"),
        ("TENANTRY_PLATFORM_MODELS_URL", "http:///v1", "expected a URL"),
        ("TENANTRY_PLATFORM_MODELS_URL", "http://vllm:port/v1", "port"),
        ("TENANTRY_GATEWAY_LOG_LEVEL", "loud", "expected debug, info"),
        ("TENANTRY_GATEWAY_UPSTREAM_CLIENT", "requests", "expected aiohttp, httpx"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value})
    assert variable in caught.value.detail
    assert message in caught.value.detail
