"""The gateway's typed settings, and the root of its exceptions.

Settings are read once at start from ``TENANTRY_*`` variables; a bad value raises
:class:`SettingsError` naming the variable. Everything a runtime tells a gateway about its
tenant comes through the bundle (:mod:`tenant_gateway.contract`), not from here: the
environment only fills gaps the bundle leaves.

The exception root lives here, on the lowest layer, because every other module of the
package may import this one and none may import the modules above it. Each error carries
how it is shown to an HTTP client (status, RFC 9457 problem type and title, OpenAI error
type and code), so one handler in the app turns every error into a response.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROBLEM_BASE = "https://tenantry.dev/problems/"

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
UPSTREAM_CLIENTS = ("aiohttp", "httpx")
"""HTTP clients the gateway can reach model providers with (``bench/`` compares them)."""
DM_SCOPES = ("main", "per-peer", "per-channel-peer")
"""How direct messages map to sessions (see :mod:`tenant_gateway.sessions.keys`)."""


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    status_code: ClassVar[int] = 500
    problem: ClassVar[str] = "internal-error"
    """Last part of the RFC 9457 problem ``type`` URI."""
    title: ClassVar[str] = "Internal error"
    error_type: ClassVar[str] = "server_error"
    """OpenAI ``error.type``."""
    code: ClassVar[str | None] = None
    """OpenAI ``error.code``."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def problem_type(self) -> str:
        return PROBLEM_BASE + self.problem


class SettingsError(GatewayError):
    """A setting has a value the gateway cannot use; the message names the variable."""

    problem = "bad-setting"
    title = "Bad setting"
    code = "bad_setting"


@dataclass(frozen=True)
class SessionSettings:
    """How channel messages become sessions, and when sessions end. The installation's
    defaults; per-tenant choices are to come through the bundle (see
    :func:`tenant_gateway.sessions.reset_policy`)."""

    dm_scope: str = "per-channel-peer"
    """``TENANTRY_GATEWAY_DM_SCOPE``: one of :data:`DM_SCOPES`."""
    idle_timeout: float | None = None
    """``TENANTRY_GATEWAY_SESSION_IDLE_TIMEOUT``: seconds without a message after which a
    session ends (``off`` or unset: never)."""
    daily_reset_hour: int | None = 4
    """``TENANTRY_GATEWAY_SESSION_DAILY_RESET``: hour (0-23) at which every session ends each
    day (``off``: never)."""
    timezone: str = "UTC"
    """``TENANTRY_GATEWAY_SESSION_TIMEZONE``: IANA time zone of the daily reset."""


@dataclass(frozen=True)
class MemorySettings:
    """The memory's optional vector search."""

    embeddings_url: str | None = None
    """OpenAI-compatible base URL whose ``POST /embeddings`` embeds notes:
    ``TENANTRY_GATEWAY_EMBEDDINGS_URL``, else the platform's model URL when a model is set."""
    embeddings_model: str | None = None
    """``TENANTRY_GATEWAY_EMBEDDINGS_MODEL``: unset, memory search is full-text only."""
    embeddings_connect_timeout: float = 5.0
    embeddings_timeout: float = 30.0
    """Seconds one embeddings request may take in all."""
    recall_limit: int = 5
    """Most notes added to a prompt as relevant memories."""


@dataclass(frozen=True)
class ChannelSettings:
    """How the gateway answers channel messages (see :mod:`tenant_gateway.channels`)."""

    model: str | None = None
    """``TENANTRY_GATEWAY_CHANNEL_MODEL``: the model that answers; unset: the first the
    tenant's model list names."""
    context_length: int | None = None
    """``TENANTRY_GATEWAY_CHANNEL_CONTEXT_LENGTH``: tokens of the model's window; unset: the
    catalog's figure for the model, else 8192."""
    reply_url: str | None = None
    """``TENANTRY_GATEWAY_REPLY_URL``: where replies are POSTed (an adapter's endpoint);
    unset: they wait in the outbox."""
    concurrency: int = 4
    """Sessions answered at the same time."""
    retry_initial: float = 0.5
    """First wait before a failed turn or reply delivery is tried again (doubling)."""
    retry_max: float = 30.0
    """Longest wait between tries."""


@dataclass(frozen=True)
class GatewaySettings:
    """What the gateway process is configured with besides its bundle."""

    platform_models_url: str | None = None
    """``TENANTRY_PLATFORM_MODELS_URL``: used only when the bundle names no model endpoint."""
    log_level: str = "warning"
    """``TENANTRY_GATEWAY_LOG_LEVEL``."""
    bundle_poll_interval: float = 0.5
    """Seconds between checks of ``bundle.json`` for changes."""
    models_cache_ttl: float = 30.0
    """Seconds a model list fetched from the upstream is reused."""
    upstream_connect_timeout: float = 5.0
    upstream_read_timeout: float = 600.0
    """Longest silence between two reads from the upstream (a long generation is slow)."""
    upstream_max_connections: int = 100
    """Per provider kind (platform, openai, anthropic, openai_compatible)."""
    upstream_client: str = "aiohttp"
    """``TENANTRY_GATEWAY_UPSTREAM_CLIENT``: the HTTP client of calls to the platform's model
    fleet, the gateway's hot path (one of :data:`UPSTREAM_CLIENTS`; aiohttp measured several
    times faster there, see ``bench/RESULTS.md``). BYOK providers are called with httpx."""
    upstream_retries: int = 2
    """Times a failure worth repeating (429, 5xx, no connection) is tried again."""
    retry_after_max: float = 10.0
    """Longest ``Retry-After`` waited for; a longer one moves on to the next fallback."""
    retry_backoff: float = 0.25
    """First wait between retries when the provider names none (doubling each time)."""
    cooldown_failures: int = 3
    """Failed requests in a row after which a provider rests."""
    cooldown_seconds: float = 30.0
    """How long a failing provider rests."""
    budget_completion_allowance: int = 512
    """Tokens a call's answer is reckoned at, before it ends, when it sets no
    ``max_tokens``."""
    redis_url: str | None = None
    """``TENANTRY_GATEWAY_REDIS_URL``: budgets shared by the tenant's replicas in Redis;
    unset: counted in this process (totals kept on the volume)."""
    shutdown_timeout: float = 5.0
    """Seconds in-flight requests get to finish after SIGTERM."""
    usage_batch_size: int = 100
    """``TENANTRY_GATEWAY_USAGE_BATCH_SIZE``: most usage events sent to the control plane in
    one request (at most 1000)."""
    usage_flush_interval: float = 1.0
    """``TENANTRY_GATEWAY_USAGE_FLUSH_INTERVAL``: longest an event waits for its batch to
    fill before it is sent anyway (seconds)."""
    usage_retry_initial: float = 0.5
    """First wait before a failed delivery is tried again (doubling each time)."""
    usage_retry_max: float = 30.0
    """``TENANTRY_GATEWAY_USAGE_RETRY_MAX``: longest wait between delivery attempts."""
    usage_delivery_timeout: float = 10.0
    """Seconds one delivery request may take before it counts as failed."""
    sessions: SessionSettings = field(default_factory=SessionSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    channels: ChannelSettings = field(default_factory=ChannelSettings)


def _url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"{name}={raw!r}: expected a URL such as http://host:8000/v1 (http or https)"
        )
    try:
        _ = parts.port
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: the port is not a number from 0 to 65535") from None
    return raw.rstrip("/")


def _redis_url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(f"{name}: expected a URL such as redis://host:6379/0")
    return raw


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise SettingsError(f"{name}={raw!r}: expected {', '.join(choices)}")
    return value


def _number(
    env: Mapping[str, str], name: str, default: float, low: float, high: float, kind: type
) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = kind(raw.strip())
    except ValueError:
        expected = "a whole number" if kind is int else "a number of seconds"
        raise SettingsError(f"{name}={raw!r}: expected {expected}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={raw!r}: expected a value from {low:g} to {high:g}")
    return float(value)


def _usage_settings(env: Mapping[str, str]) -> dict[str, Any]:
    defaults = GatewaySettings
    return {
        "usage_batch_size": int(
            _number(
                env, "TENANTRY_GATEWAY_USAGE_BATCH_SIZE", defaults.usage_batch_size, 1, 1000, int
            )
        ),
        "usage_flush_interval": _number(
            env,
            "TENANTRY_GATEWAY_USAGE_FLUSH_INTERVAL",
            defaults.usage_flush_interval,
            0.01,
            3600,
            float,
        ),
        "usage_retry_max": _number(
            env, "TENANTRY_GATEWAY_USAGE_RETRY_MAX", defaults.usage_retry_max, 0.1, 3600, float
        ),
    }


def _off_or_number(
    env: Mapping[str, str], name: str, default: float | None, low: float, high: float, kind: type
) -> float | None:
    """Like :func:`_number`, with ``off`` for no value at all."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    if raw.strip().lower() == "off":
        return None
    try:
        return _number(env, name, low, low, high, kind)
    except SettingsError as exc:
        raise SettingsError(f"{exc.detail}, or off") from None


def _timezone(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"{name}={raw!r}: expected an IANA time zone such as Europe/Berlin"
        ) from None
    return raw


def _session_settings(env: Mapping[str, str]) -> SessionSettings:
    hour = _off_or_number(
        env, "TENANTRY_GATEWAY_SESSION_DAILY_RESET", SessionSettings.daily_reset_hour, 0, 23, int
    )
    return SessionSettings(
        dm_scope=_choice(env, "TENANTRY_GATEWAY_DM_SCOPE", DM_SCOPES, SessionSettings.dm_scope),
        idle_timeout=_off_or_number(
            env, "TENANTRY_GATEWAY_SESSION_IDLE_TIMEOUT", None, 1, 365 * 86400, float
        ),
        daily_reset_hour=None if hour is None else int(hour),
        timezone=_timezone(env, "TENANTRY_GATEWAY_SESSION_TIMEZONE", SessionSettings.timezone),
    )


def _memory_settings(env: Mapping[str, str], platform_url: str | None) -> MemorySettings:
    model = env.get("TENANTRY_GATEWAY_EMBEDDINGS_MODEL", "").strip() or None
    url = _url(env, "TENANTRY_GATEWAY_EMBEDDINGS_URL")
    if model is None:
        if url is not None:
            raise SettingsError(
                "TENANTRY_GATEWAY_EMBEDDINGS_URL is set but TENANTRY_GATEWAY_EMBEDDINGS_MODEL "
                "is not: name the embedding model"
            )
        return MemorySettings()
    url = url or platform_url
    if url is None:
        raise SettingsError(
            "TENANTRY_GATEWAY_EMBEDDINGS_MODEL is set but neither "
            "TENANTRY_GATEWAY_EMBEDDINGS_URL nor TENANTRY_PLATFORM_MODELS_URL says where it runs"
        )
    return MemorySettings(embeddings_url=url, embeddings_model=model)


def _channel_settings(env: Mapping[str, str]) -> ChannelSettings:
    length = env.get("TENANTRY_GATEWAY_CHANNEL_CONTEXT_LENGTH", "").strip()
    return ChannelSettings(
        model=env.get("TENANTRY_GATEWAY_CHANNEL_MODEL", "").strip() or None,
        context_length=(
            int(_number(env, "TENANTRY_GATEWAY_CHANNEL_CONTEXT_LENGTH", 0, 256, 10**8, int))
            if length
            else None
        ),
        reply_url=_url(env, "TENANTRY_GATEWAY_REPLY_URL"),
    )


def load_settings(env: Mapping[str, str]) -> GatewaySettings:
    """Read the gateway's settings from ``env`` (pass ``os.environ`` in a real process)."""
    platform_models_url = _url(env, "TENANTRY_PLATFORM_MODELS_URL")
    return GatewaySettings(
        platform_models_url=platform_models_url,
        log_level=_choice(env, "TENANTRY_GATEWAY_LOG_LEVEL", LOG_LEVELS, "warning"),
        redis_url=_redis_url(env, "TENANTRY_GATEWAY_REDIS_URL"),
        upstream_client=_choice(
            env,
            "TENANTRY_GATEWAY_UPSTREAM_CLIENT",
            UPSTREAM_CLIENTS,
            GatewaySettings.upstream_client,
        ),
        sessions=_session_settings(env),
        memory=_memory_settings(env, platform_models_url),
        channels=_channel_settings(env),
        **_usage_settings(env),
    )
