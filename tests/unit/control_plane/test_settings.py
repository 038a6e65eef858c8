"""Settings are typed, read once, and a bad value names its variable."""

from pathlib import Path

import pytest

from control_plane.errors import SettingsError
from control_plane.settings import load_settings, normalize_database_url


def test_defaults_are_the_embedded_default(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=str(tmp_path))
    assert settings.runtime == "local"
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path}/tenantry.db"
    assert settings.port == 8080
    assert settings.platform_models_url is None
    assert settings.local.retain_data is False


def test_flags_win_over_variables(tmp_path: Path) -> None:
    env = {"TENANTRY_PORT": "9000", "TENANTRY_HOST": "0.0.0.0"}
    settings = load_settings(env, data_dir=str(tmp_path), port=9100, host="127.0.0.2")
    assert (settings.port, settings.host) == (9100, "127.0.0.2")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TENANTRY_PORT", "eighty", "expected an integer"),
        ("TENANTRY_PORT", "70000", "between 0 and 65535"),
        ("TENANTRY_RUNTIME", "docker", "expected local or kubernetes"),
        ("TENANTRY_LOCAL_RETAIN_DATA", "maybe", "expected true or false"),
        ("TENANTRY_LOCAL_READY_TIMEOUT", "-1", "at least"),
        ("TENANTRY_PLATFORM_MODELS_URL", "ftp://models", "expected a URL"),
        ("TENANTRY_DATABASE_URL", "mysql://db", "unsupported database"),
        ("TENANTRY_LOG_LEVEL", "loud", "expected debug"),
        ("TENANTRY_KUBERNETES_NAMESPACE", "Tenants_NS", "DNS label"),
        ("TENANTRY_INSTALLATION", "-x", "DNS label"),
        ("TENANTRY_KUBERNETES_READY_TIMEOUT", "0", "at least"),
        ("TENANTRY_DATABASE_MIGRATION_URL", "mysql://db", "unsupported database"),
    ],
)
def test_bad_values_name_the_variable(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        load_settings({variable: value}, data_dir=str(tmp_path))
    assert caught.value.variable == variable
    assert str(caught.value).startswith(variable)


def test_database_urls_name_the_async_driver() -> None:
    assert normalize_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_database_url("sqlite:////tmp/x.db") == "sqlite+aiosqlite:////tmp/x.db"


def test_platform_models_url_is_trimmed(tmp_path: Path) -> None:
    env = {"TENANTRY_PLATFORM_MODELS_URL": "http://127.0.0.1:8000/v1/"}
    assert load_settings(env, data_dir=str(tmp_path)).platform_models_url == (
        "http://127.0.0.1:8000/v1"
    )


def test_the_kubernetes_runtime_is_configured_from_variables(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "TENANTRY_RUNTIME": "kubernetes",
            "TENANTRY_KUBERNETES_NAMESPACE": "tenants",
            "TENANTRY_KUBERNETES_NAMESPACE_PER_TENANT": "true",
            "TENANTRY_GATEWAY_IMAGE": "registry.example/gw:1",
            "TENANTRY_KUBERNETES_STORAGE_CLASS": "fast",
            "TENANTRY_KUBERNETES_RETAIN_VOLUMES": "false",
        },
        data_dir=str(tmp_path),
    )
    assert settings.runtime == "kubernetes"
    k8s = settings.kubernetes
    assert (k8s.namespace, k8s.namespace_per_tenant) == ("tenants", True)
    assert (k8s.gateway_image, k8s.storage_class, k8s.retain_volumes) == (
        "registry.example/gw:1",
        "fast",
        False,
    )
