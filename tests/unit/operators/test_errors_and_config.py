"""How API answers are classified, and the operator's settings."""

from __future__ import annotations

import pytest

from operators.config import OperatorConfig, load_config
from operators.errors import (
    KubernetesError,
    KubernetesRefused,
    KubernetesUnavailable,
    OperatorError,
    OperatorSettingsError,
)
from operators.tenant.apply import Answer, Kind, refusal


def answer(status: int, body: object = None, **headers: str) -> Answer:
    return Answer(status=status, body=body, headers=headers)


@pytest.mark.parametrize("status", [400, 403, 404, 410, 422])
def test_refusals_that_will_not_fix_themselves_are_permanent(status: int) -> None:
    error = refusal("POST", "/api/v1/namespaces/t/services", answer(status))
    assert isinstance(error, KubernetesRefused)
    assert error.status == status


@pytest.mark.parametrize("status", [401, 408, 409, 429, 500, 502, 503, 504])
def test_failures_that_may_pass_are_temporary(status: int) -> None:
    error = refusal("PATCH", "/apis/apps/v1/namespaces/t/deployments/d", answer(status))
    assert isinstance(error, KubernetesUnavailable)
    assert isinstance(error, KubernetesError)
    assert isinstance(error, OperatorError)


def test_the_apis_status_object_gives_the_reason_and_message() -> None:
    body = {"kind": "Status", "reason": "Invalid", "message": 'Deployment "x" is invalid: spec'}
    error = refusal("PATCH", "/apis/apps/v1/namespaces/t/deployments/x", answer(422, body))
    assert error.reason == "Invalid"
    assert str(error) == (
        "PATCH /apis/apps/v1/namespaces/t/deployments/x: "
        '422 Invalid: Deployment "x" is invalid: spec'
    )


def test_without_a_status_object_the_http_phrase_is_the_reason() -> None:
    error = refusal("POST", "/x", answer(403, b"not json"))
    assert error.reason == "Forbidden"
    assert str(error) == "POST /x: 403 Forbidden: Forbidden"


def test_retry_after_is_kept() -> None:
    error = refusal("GET", "/x", answer(429, None, **{"Retry-After": "7"}))
    assert isinstance(error, KubernetesUnavailable)
    assert error.retry_after == 7.0


def test_kinds_know_their_paths() -> None:
    assert Kind("v1", "services").item("ns", "s") == "/api/v1/namespaces/ns/services/s"
    assert Kind("apps/v1", "deployments").collection("ns") == (
        "/apis/apps/v1/namespaces/ns/deployments"
    )


def test_retries_back_off_exponentially_up_to_a_ceiling_and_honour_retry_after() -> None:
    config = OperatorConfig(retry_base_delay=1.0, retry_max_delay=30.0)
    assert [config.retry_delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert config.retry_delay(0, retry_after=12.0) == 12.0
    assert config.retry_delay(10_000) == 30.0


def test_settings_come_from_the_environment() -> None:
    config = load_config(
        {
            "TENANTRY_OPERATOR_RESYNC_INTERVAL": "120",
            "TENANTRY_OPERATOR_REQUEST_TIMEOUT": "5.5",
            "TENANTRY_OPERATOR_RECONCILE_CONCURRENCY": "4",
            "TENANTRY_LOG_LEVEL": "DEBUG",
        }
    )
    assert config.resync_interval == 120.0
    assert config.request_timeout == 5.5
    assert config.reconcile_concurrency == 4
    assert config.log_level == "debug"
    assert load_config({}) == OperatorConfig()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TENANTRY_OPERATOR_RESYNC_INTERVAL", "soon"),
        ("TENANTRY_OPERATOR_RESYNC_INTERVAL", "0"),
        ("TENANTRY_OPERATOR_REQUEST_TIMEOUT", "-1"),
        ("TENANTRY_OPERATOR_REQUEST_TIMEOUT", "inf"),
        ("TENANTRY_OPERATOR_RECONCILE_CONCURRENCY", "0"),
        ("TENANTRY_OPERATOR_RECONCILE_CONCURRENCY", "2.5"),
        ("TENANTRY_LOG_LEVEL", "loud"),
    ],
)
def test_a_bad_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(OperatorSettingsError, match=f"^{name}="):
        load_config({name: value})
