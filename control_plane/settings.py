"""Typed settings, read once at start from ``TENANTRY_*`` variables and command-line flags.

A wrong value raises :class:`~control_plane.errors.SettingsError` naming the variable.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from control_plane.errors import SettingsError

RuntimeKind = Literal["local", "kubernetes"]


@dataclass(frozen=True)
class LocalRuntimeSettings:
    """How the embedded default runs gateways as child processes."""

    gateway_host: str = "127.0.0.1"
    """Address gateways bind to and the host part of their endpoints."""
    retain_data: bool = False
    """Keep a deleted tenant's memory volume (data dir) instead of removing it."""
    ready_timeout: float = 60.0
    """Seconds a new gateway has to answer ``/readyz`` before the start counts as failed."""
    stop_timeout: float = 10.0
    """Seconds between SIGTERM and SIGKILL when stopping a gateway."""
    max_restarts: int = 5
    """Crashes within ``restart_window`` after which a gateway is declared crash-looping."""
    restart_window: float = 120.0
    stop_gateways_on_exit: bool = True
    """Stop every gateway when the control plane shuts down cleanly (kill -9 leaves them,
    and the next start adopts them)."""


@dataclass(frozen=True)
class KubernetesRuntimeSettings:
    """How the Kubernetes runtime places tenants (``TENANTRY_RUNTIME=kubernetes``)."""

    namespace: str = "tenantry-tenants"
    """``TENANTRY_KUBERNETES_NAMESPACE``: where Tenant resources and bundle Secrets go."""
    namespace_per_tenant: bool = False
    """``TENANTRY_KUBERNETES_NAMESPACE_PER_TENANT``: one namespace per tenant instead,
    named ``<namespace>-<slug>``, made by the control plane (labelled with the installation
    and the tenant) unless it exists, and deleted with the tenant if it made it and the
    tenant's volume is not retained (a retained volume lives in it)."""
    gateway_image: str = "tenantry/tenant-gateway:0.1.0"
    """``TENANTRY_GATEWAY_IMAGE``: the image of every tenant's gateway pod."""
    installation: str = "tenantry"
    """``TENANTRY_INSTALLATION``: label value that marks this installation's Tenants."""
    ready_timeout: float = 300.0
    """``TENANTRY_KUBERNETES_READY_TIMEOUT``: seconds a Tenant has to report Running."""
    storage_class: str | None = None
    """``TENANTRY_KUBERNETES_STORAGE_CLASS``: class of the memory volumes (cluster default)."""
    retain_volumes: bool = True
    """``TENANTRY_KUBERNETES_RETAIN_VOLUMES``: keep a deleted tenant's volume."""


@dataclass(frozen=True)
class FleetSettings:
    """The local model fleet: vLLM as a supervised child process (``tenantry fleet serve``,
    ``tenantry up --fleet-model``), for single-machine installs with a GPU."""

    model: str | None = None
    """``TENANTRY_FLEET_MODEL`` (``--fleet-model``, ``--model``): what vLLM loads, a Hugging
    Face id or a local path; None: no local fleet."""
    served_model_name: str | None = None
    """``TENANTRY_FLEET_SERVED_MODEL_NAME``: the name tenants ask for; None: the model's."""
    host: str = "127.0.0.1"
    """``TENANTRY_FLEET_HOST``: where vLLM listens."""
    port: int = 8000
    """``TENANTRY_FLEET_PORT`` (``--fleet-port``): vLLM's port; 0 picks a free one."""
    command: tuple[str, ...] = ("vllm",)
    """``TENANTRY_FLEET_COMMAND``: the ``vllm`` executable (shell-quoted words), before
    ``serve MODEL …``."""
    extra_args: tuple[str, ...] = ()
    """``TENANTRY_FLEET_ARGS``: more ``vllm serve`` options (shell-quoted words); options
    after ``--`` on the command line follow them."""
    ready_timeout: float = 1800.0
    """``TENANTRY_FLEET_READY_TIMEOUT``: seconds vLLM has to answer ``GET /health`` with 200
    (a first start downloads the weights) before the start counts as a crash."""
    stop_timeout: float = 30.0
    """``TENANTRY_FLEET_STOP_TIMEOUT``: seconds between SIGTERM and SIGKILL."""
    max_restarts: int = 5
    """``TENANTRY_FLEET_MAX_RESTARTS``: crashes within ``restart_window`` after which the
    supervisor gives up."""
    restart_window: float = 600.0
    """``TENANTRY_FLEET_RESTART_WINDOW``: seconds a crash counts against ``max_restarts``."""
    restart_delay: float = 2.0
    """``TENANTRY_FLEET_RESTART_DELAY``: seconds before the first restart; each further crash
    within the window doubles it, up to ``restart_delay_max``."""
    restart_delay_max: float = 60.0
    health_interval: float = 5.0
    """Seconds between health checks of a ready vLLM."""
    unhealthy_after: int = 3
    """Failed health checks in a row after which a ready vLLM is restarted."""
    probe_interval: float = 0.5
    """Seconds between health checks while vLLM loads."""
    progress_interval: float = 15.0
    """Seconds between progress reports while vLLM loads."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    migration_database_url: str | None = field(default=None, repr=False)
    """``TENANTRY_DATABASE_MIGRATION_URL``: the schema owner's URL for migrations on
    PostgreSQL when the application connects as a role that does not own the tables;
    None: migrate with ``database_url``."""
    host: str = "127.0.0.1"
    port: int = 8080
    runtime: RuntimeKind = "local"
    platform_models_url: str | None = None
    redis_url: str | None = None
    public_url: str | None = None
    """``TENANTRY_PUBLIC_URL``: the control plane's address as the internet reaches it (for
    example ``https://tenantry.example.com``). Set: chat platforms' webhooks are registered at
    ``{public_url}/webhooks/...``; None: Telegram bots long-poll (the embedded default)."""
    telegram_platform_bot_token: str | None = field(default=None, repr=False)
    """``TENANTRY_TELEGRAM_PLATFORM_BOT_TOKEN``: the one platform bot's token, held only by
    the control plane; None: no platform bot runs (pairing codes can still be issued)."""
    telegram_platform_bot_username: str | None = None
    """``TENANTRY_TELEGRAM_PLATFORM_BOT_USERNAME``: the platform bot's username (without
    ``@``), named in pairing instructions; None: they say "the platform bot"."""
    log_level: str = "info"
    log_format: str = "auto"
    """``TENANTRY_LOG_FORMAT``: ``text``, ``json``, or ``auto`` (text on a terminal)."""
    reconcile_concurrency: int = 16
    """Tenants reconciled at once."""
    resync_interval: float = 5.0
    """Seconds between full passes that pick up anything a notification missed."""
    local: LocalRuntimeSettings = field(default_factory=LocalRuntimeSettings)
    kubernetes: KubernetesRuntimeSettings = field(default_factory=KubernetesRuntimeSettings)
    fleet: FleetSettings = field(default_factory=FleetSettings)
    internal_url: str | None = None
    """``TENANTRY_INTERNAL_URL``: how gateways reach this control plane (to unseal their
    credentials); ``tenantry up`` fills it in from the address it listens on."""
    kek: str | None = field(default=None, repr=False)
    """``TENANTRY_KEK``: the key ring (``id:base64key,…``, first active); None means the
    embedded default's generated ring in ``DIR/kek``."""
    token_hash_key: str | None = field(default=None, repr=False)
    """``TENANTRY_TOKEN_HASH_KEY``: 32 bytes in base64, the key of stored token digests;
    None means the embedded default's generated key in ``DIR/token-hash-key``."""
    jwt_keys: str | None = field(default=None, repr=False)
    """``TENANTRY_JWT_KEYS``: access-token signing keys (``kid:base64seed,…``, first signs);
    None means the embedded default's generated ring in ``DIR/jwt-keys``."""
    access_token_ttl: float = 900.0
    """``TENANTRY_ACCESS_TOKEN_TTL``: seconds an access token is valid."""
    refresh_token_ttl: float = 30 * 86400.0
    """``TENANTRY_REFRESH_TOKEN_TTL``: seconds a login session lasts without a new login."""
    login_attempts_per_account: int = 5
    """``TENANTRY_LOGIN_ATTEMPTS_PER_ACCOUNT`` within ``login_window``."""
    login_attempts_per_address: int = 20
    """``TENANTRY_LOGIN_ATTEMPTS_PER_ADDRESS`` within ``login_window``."""
    trusted_proxies: tuple[str, ...] = ()
    """``TENANTRY_TRUSTED_PROXIES``: comma-separated addresses or CIDR ranges of reverse
    proxies whose ``X-Forwarded-For`` names the real client (for the login throttle)."""
    login_window: float = 900.0
    """``TENANTRY_LOGIN_WINDOW``: seconds a failed login attempt counts."""
    provider_env: dict[str, str] = field(default_factory=dict)
    """``TENANTRY_*_API_BASE`` variables: where provider credentials are validated."""
    plan_budgets: dict[str, Any] = field(default_factory=dict)
    """``TENANTRY_PLAN_BUDGETS``: changes to the plans' budgets, as JSON
    (``{"free": {"monthly_tokens": 50000, "tokens_per_minute": null}}``; null: no limit);
    checked by :func:`control_plane.tenants.plans.plan_budgets`."""

    @property
    def schema_owner_url(self) -> str:
        """The URL migrations run with."""
        return self.migration_database_url or self.database_url

    @property
    def gateways_dir(self) -> Path:
        return self.data_dir / "gateways"

    @property
    def volumes_dir(self) -> Path:
        return self.data_dir / "volumes"

    @property
    def kek_file(self) -> Path:
        return self.data_dir / "kek"

    @property
    def token_hash_key_file(self) -> Path:
        return self.data_dir / "token-hash-key"

    @property
    def jwt_keys_file(self) -> Path:
        return self.data_dir / "jwt-keys"

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin-token"

    @property
    def fleet_dir(self) -> Path:
        return self.data_dir / "fleet"


_TRUE = {"1", "true", "yes", "on"}
_BOT_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{1,28}[Bb][Oo][Tt]")
_FALSE = {"0", "false", "no", "off", ""}


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(name, f"expected true or false, got {raw!r}")


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    found = []
    for entry in (e.strip() for e in env.get(name, "").split(",")):
        if not entry:
            continue
        try:
            found.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            raise SettingsError(name, f"{entry!r} is not an address or CIDR range") from None
    return tuple(found)


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _dns_label(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not _DNS_LABEL.fullmatch(value):
        raise SettingsError(name, f"expected a DNS label (a-z, 0-9, -), got {value!r}")
    return value


def _bot_username(env: Mapping[str, str], name: str) -> str | None:
    """A Telegram bot username: 5 to 32 letters, digits or underscores, ending in ``bot``."""
    raw = env.get(name, "").strip().removeprefix("@")
    if not raw:
        return None
    if not _BOT_USERNAME.fullmatch(raw):
        raise SettingsError(
            name, f"{raw!r} is not a Telegram bot username (5-32 letters, digits, _; ends in bot)"
        )
    return raw


_BOT_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,}")


def _bot_token(env: Mapping[str, str], name: str) -> str | None:
    """A Telegram bot token as BotFather issues it: ``<bot id>:<secret>``."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not _BOT_TOKEN.fullmatch(raw):
        # The value is a secret: never echo it.
        raise SettingsError(name, "expected a Telegram bot token shaped like 123456:ABC-DEF...")
    return raw


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name, default).strip().lower() or default
    if value not in choices:
        raise SettingsError(name, f"expected {', '.join(choices)}, got {value!r}")
    return value


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(name, f"expected a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise SettingsError(name, f"expected a finite number, got {raw!r}")
    if value < minimum:
        raise SettingsError(name, f"must be at least {minimum:g}, got {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(name, f"expected an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise SettingsError(name, f"must be between {minimum} and {maximum}, got {value}")
    return value


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise SettingsError(name, f"expected a URL starting with {' or '.join(schemes)}")
    return raw.rstrip("/")


def _words(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return tuple(shlex.split(raw))
    except ValueError as exc:
        raise SettingsError(name, f"cannot split into words: {exc}") from None


def load_fleet_settings(env: Mapping[str, str]) -> FleetSettings:
    """The ``TENANTRY_FLEET_*`` variables."""
    return FleetSettings(
        model=env.get("TENANTRY_FLEET_MODEL", "").strip() or None,
        served_model_name=env.get("TENANTRY_FLEET_SERVED_MODEL_NAME", "").strip() or None,
        host=env.get("TENANTRY_FLEET_HOST", "").strip() or "127.0.0.1",
        port=_int(env, "TENANTRY_FLEET_PORT", 8000, minimum=0, maximum=65535),
        command=_words(env, "TENANTRY_FLEET_COMMAND", ("vllm",)),
        extra_args=_words(env, "TENANTRY_FLEET_ARGS", ()),
        ready_timeout=_number(env, "TENANTRY_FLEET_READY_TIMEOUT", 1800.0, minimum=1.0),
        stop_timeout=_number(env, "TENANTRY_FLEET_STOP_TIMEOUT", 30.0, minimum=0.1),
        max_restarts=_int(env, "TENANTRY_FLEET_MAX_RESTARTS", 5, minimum=1, maximum=1000),
        restart_window=_number(env, "TENANTRY_FLEET_RESTART_WINDOW", 600.0, minimum=1.0),
        restart_delay=_number(env, "TENANTRY_FLEET_RESTART_DELAY", 2.0, minimum=0.0),
    )


def normalize_database_url(url: str, variable: str = "TENANTRY_DATABASE_URL") -> str:
    """Accept ``sqlite:///…`` and ``postgresql://…`` and name the async driver we use."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise SettingsError(variable, "expected a URL such as postgresql://user@host/db")
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if base in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    raise SettingsError(variable, f"unsupported database {scheme!r}; use sqlite or postgresql")


def _json_object(env: Mapping[str, str], name: str) -> dict[str, Any]:
    raw = env.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise SettingsError(name, f"expected a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise SettingsError(name, f"expected a JSON object, got {type(value).__name__}")
    return value


def load_settings(
    env: Mapping[str, str] | None = None,
    *,
    data_dir: str | None = None,
    host: str | None = None,
    port: int | None = None,
) -> Settings:
    """Build settings from the environment; flags given here win over variables."""
    env = os.environ if env is None else env
    root = Path(data_dir or env.get("TENANTRY_DATA_DIR") or ".tenantry").expanduser().resolve()
    db_raw = env.get("TENANTRY_DATABASE_URL", "").strip() or f"sqlite:///{root / 'tenantry.db'}"
    runtime = env.get("TENANTRY_RUNTIME", "local").strip() or "local"
    if runtime not in ("local", "kubernetes"):
        raise SettingsError("TENANTRY_RUNTIME", f"expected local or kubernetes, got {runtime!r}")
    kubernetes = KubernetesRuntimeSettings(
        namespace=_dns_label(env, "TENANTRY_KUBERNETES_NAMESPACE", "tenantry-tenants"),
        namespace_per_tenant=_bool(env, "TENANTRY_KUBERNETES_NAMESPACE_PER_TENANT", False),
        gateway_image=env.get("TENANTRY_GATEWAY_IMAGE", "").strip()
        or KubernetesRuntimeSettings.gateway_image,
        installation=_dns_label(env, "TENANTRY_INSTALLATION", "tenantry"),
        ready_timeout=_number(env, "TENANTRY_KUBERNETES_READY_TIMEOUT", 300.0, minimum=1.0),
        storage_class=env.get("TENANTRY_KUBERNETES_STORAGE_CLASS", "").strip() or None,
        retain_volumes=_bool(env, "TENANTRY_KUBERNETES_RETAIN_VOLUMES", True),
    )
    log_level = env.get("TENANTRY_LOG_LEVEL", "info").strip().lower()
    if log_level not in ("debug", "info", "warning", "error"):
        raise SettingsError(
            "TENANTRY_LOG_LEVEL", f"expected debug, info, warning or error, got {log_level!r}"
        )
    local = LocalRuntimeSettings(
        gateway_host=env.get("TENANTRY_LOCAL_GATEWAY_HOST", "127.0.0.1").strip() or "127.0.0.1",
        retain_data=_bool(env, "TENANTRY_LOCAL_RETAIN_DATA", False),
        ready_timeout=_number(env, "TENANTRY_LOCAL_READY_TIMEOUT", 60.0, minimum=1.0),
        stop_timeout=_number(env, "TENANTRY_LOCAL_STOP_TIMEOUT", 10.0, minimum=0.1),
        max_restarts=_int(env, "TENANTRY_LOCAL_MAX_RESTARTS", 5, minimum=1, maximum=1000),
        restart_window=_number(env, "TENANTRY_LOCAL_RESTART_WINDOW", 120.0, minimum=1.0),
        stop_gateways_on_exit=_bool(env, "TENANTRY_LOCAL_STOP_GATEWAYS_ON_EXIT", True),
    )
    return Settings(
        data_dir=root,
        database_url=normalize_database_url(db_raw),
        migration_database_url=(
            normalize_database_url(migration_raw, "TENANTRY_DATABASE_MIGRATION_URL")
            if (migration_raw := env.get("TENANTRY_DATABASE_MIGRATION_URL", "").strip())
            else None
        ),
        host=host or env.get("TENANTRY_HOST", "127.0.0.1"),
        port=port
        if port is not None
        else _int(env, "TENANTRY_PORT", 8080, minimum=0, maximum=65535),
        runtime="kubernetes" if runtime == "kubernetes" else "local",
        kubernetes=kubernetes,
        fleet=load_fleet_settings(env),
        platform_models_url=_url(env, "TENANTRY_PLATFORM_MODELS_URL", ("http", "https")),
        redis_url=_url(env, "TENANTRY_REDIS_URL", ("redis", "rediss", "unix")),
        public_url=_url(env, "TENANTRY_PUBLIC_URL", ("http", "https")),
        telegram_platform_bot_token=_bot_token(env, "TENANTRY_TELEGRAM_PLATFORM_BOT_TOKEN"),
        telegram_platform_bot_username=_bot_username(
            env, "TENANTRY_TELEGRAM_PLATFORM_BOT_USERNAME"
        ),
        log_level=log_level,
        log_format=_choice(env, "TENANTRY_LOG_FORMAT", ("auto", "text", "json"), "auto"),
        reconcile_concurrency=_int(
            env, "TENANTRY_RECONCILE_CONCURRENCY", 16, minimum=1, maximum=1024
        ),
        resync_interval=_number(env, "TENANTRY_RESYNC_INTERVAL", 5.0, minimum=0.1),
        local=local,
        internal_url=_url(env, "TENANTRY_INTERNAL_URL", ("http", "https")),
        kek=env.get("TENANTRY_KEK", "").strip() or None,
        token_hash_key=env.get("TENANTRY_TOKEN_HASH_KEY", "").strip() or None,
        jwt_keys=env.get("TENANTRY_JWT_KEYS", "").strip() or None,
        access_token_ttl=_number(env, "TENANTRY_ACCESS_TOKEN_TTL", 900.0, minimum=30.0),
        refresh_token_ttl=_number(env, "TENANTRY_REFRESH_TOKEN_TTL", 30 * 86400.0, minimum=60.0),
        login_attempts_per_account=_int(
            env, "TENANTRY_LOGIN_ATTEMPTS_PER_ACCOUNT", 5, minimum=1, maximum=1000
        ),
        login_attempts_per_address=_int(
            env, "TENANTRY_LOGIN_ATTEMPTS_PER_ADDRESS", 20, minimum=1, maximum=100000
        ),
        login_window=_number(env, "TENANTRY_LOGIN_WINDOW", 900.0, minimum=1.0),
        trusted_proxies=_networks(env, "TENANTRY_TRUSTED_PROXIES"),
        provider_env={k: v for k, v in env.items() if k.endswith("_API_BASE")},
        plan_budgets=_json_object(env, "TENANTRY_PLAN_BUDGETS"),
    )
