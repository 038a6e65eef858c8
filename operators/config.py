"""The operator's settings: typed, read once at start, named by their variable when wrong."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from operators.errors import OperatorSettingsError

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class OperatorConfig:
    """How the operator paces itself."""

    resync_interval: float | None = 60.0
    """``TENANTRY_OPERATOR_RESYNC_INTERVAL``: seconds between re-applying every Tenant's
    children, which puts back what someone edited by hand; None: never (deleted children
    still come back at once)."""
    retry_base_delay: float = 1.0
    """First delay, in seconds, after a failure that may pass; doubled on each retry."""
    retry_max_delay: float = 60.0
    """Longest delay between retries."""
    request_timeout: float = 30.0
    """``TENANTRY_OPERATOR_REQUEST_TIMEOUT``: seconds one Kubernetes API call may take."""
    reconcile_concurrency: int = 16
    """``TENANTRY_OPERATOR_RECONCILE_CONCURRENCY``: Tenants whose children are applied at
    once; the rest wait their turn (status reports do not)."""
    log_level: str = "info"
    """``TENANTRY_LOG_LEVEL``: debug, info, warning or error."""

    def retry_delay(self, retry: int, retry_after: float | None = None) -> float:
        """Exponential backoff, never shorter than what the server asked for."""
        delay = min(self.retry_max_delay, self.retry_base_delay * 2.0 ** min(retry, 30))
        return max(delay, retry_after or 0.0)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise OperatorSettingsError(f"{name}={raw!r}: expected a positive number of seconds")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise OperatorSettingsError(f"{name}={raw!r}: expected a whole number of at least 1")
    return value


def _log_level(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip().lower() or "info"
    if raw not in LOG_LEVELS:
        raise OperatorSettingsError(f"{name}={env[name]!r}: expected {', '.join(LOG_LEVELS)}")
    return raw


def load_config(env: Mapping[str, str]) -> OperatorConfig:
    """Read the settings from ``env`` (pass ``os.environ`` in a real process)."""
    return OperatorConfig(
        resync_interval=_seconds(env, "TENANTRY_OPERATOR_RESYNC_INTERVAL", 60.0),
        request_timeout=_seconds(env, "TENANTRY_OPERATOR_REQUEST_TIMEOUT", 30.0),
        reconcile_concurrency=_count(env, "TENANTRY_OPERATOR_RECONCILE_CONCURRENCY", 16),
        log_level=_log_level(env, "TENANTRY_LOG_LEVEL"),
    )
