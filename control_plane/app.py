"""Builds the control plane's Litestar app and wires its services together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig

from control_plane.api.audit import AuditController
from control_plane.api.auth import ApiTokenController, AuthController, UserController
from control_plane.api.authz import authorize, tenant_id_of
from control_plane.api.channels import ChannelController
from control_plane.api.credentials import CredentialController
from control_plane.api.internal import (
    ingest_usage,
    platform_bot_reply,
    platform_bot_typing,
    unseal_gateway,
)
from control_plane.api.members import InvitationController, MemberController, accept_invitation
from control_plane.api.models import ModelCatalogController, tenant_models
from control_plane.api.ops import MetricsController, healthz, readyz
from control_plane.api.problems import EXCEPTION_HANDLERS
from control_plane.api.tenants import GatewayKeyController, TenantController
from control_plane.api.usage import tenant_usage
from control_plane.api.webhooks import channel_webhook, platform_bot_webhook
from control_plane.catalog.service import ModelCatalog
from control_plane.channels.forwarding import Forwarder
from control_plane.channels.gateways import GatewayLink
from control_plane.channels.platform_bot import PlatformBot
from control_plane.channels.service import ISSUE_LIMITS, REDEEM_LIMITS, ChannelDirectory
from control_plane.channels.tenant_bots import TenantBots
from control_plane.db import migrate
from control_plane.db.engine import Database
from control_plane.identity.access_tokens import AccessTokens, load_or_create_jwt_keys
from control_plane.identity.admin_tokens import AdminTokens
from control_plane.identity.api_tokens import ApiTokenService
from control_plane.identity.audit_log import AuditLog
from control_plane.identity.authenticate import Authenticator
from control_plane.identity.members import MembershipService
from control_plane.identity.sessions import SessionService
from control_plane.identity.throttle import (
    LoginThrottle,
    MemoryThrottle,
    RedisThrottle,
    ThrottleLimits,
)
from control_plane.identity.users import UserService
from control_plane.reconciler import TenantReconciler
from control_plane.runtime.base import Runtime
from control_plane.runtime.local import LocalRuntime
from control_plane.settings import Settings
from control_plane.tenants.events import EventSignal
from control_plane.tenants.keys import GatewayKeyService
from control_plane.tenants.lifecycle import TenantLifecycle
from control_plane.tenants.plans import plan_budgets
from control_plane.tenants.schemas import PLANS
from control_plane.tenants.service import TenantService
from control_plane.usage.service import UsageLedger
from control_plane.vault.loading import load_vault_keys
from control_plane.vault.providers import provider_bases_from_env
from control_plane.vault.service import CredentialVault

log = logging.getLogger(__name__)

VERSION = "0.1.0"


def _from_state(name: str) -> Provide:
    def provide(state: State) -> Any:
        return state[name]

    return Provide(provide, sync_to_thread=False)


STATE_DEPENDENCIES = (
    "tenants",
    "gateway_keys",
    "signal",
    "vault",
    "members",
    "audit_log",
    "users",
    "sessions",
    "api_tokens",
    "catalog",
    "usage",
    "channels",
    "gateway_link",
    "platform_bot",
    "tenant_bots",
)
"""Services handlers receive by name (``NamedDependency``), from the app's state."""


def _runtime(settings: Settings) -> Runtime:
    if settings.runtime == "kubernetes":
        from control_plane.runtime.kubernetes.runtime import (
            KubernetesRuntime,
            api_client_from_environment,
        )

        return KubernetesRuntime(
            settings.kubernetes,
            api_client_from_environment(),
            platform_models_url=settings.platform_models_url,
        )
    return LocalRuntime(settings)


def _redis(url: str | None) -> Any:
    if url is None:
        return None
    import redis.asyncio

    return redis.asyncio.from_url(url)


def _throttle(redis_client: Any, limits: ThrottleLimits) -> LoginThrottle:
    """Attempts counted in Redis when it is configured (shared by replicas), else here."""
    if redis_client is not None:
        return RedisThrottle(redis_client, limits)
    return MemoryThrottle(limits)


def _tenant_id(request: Request[Any, Any, Any]) -> str:
    return tenant_id_of(request)


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    on_first_token: Callable[[str], None] | None = None,
    reconcile: bool = True,
) -> Litestar:
    """The control plane app; starting it migrates the database and starts the reconciler.

    ``reconcile=False`` serves the API without acting on tenants (API-only tests, tooling).
    """
    db = Database(settings.database_url)
    signal = EventSignal()
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = load_vault_keys(settings)
    for warning in keys.generated:
        log.warning("%s", warning)
    provider_http = httpx.AsyncClient(timeout=httpx.Timeout(10.0), trust_env=False)
    lifecycle = TenantLifecycle(db, signal)
    runtime = runtime or _runtime(settings)
    bases = provider_bases_from_env(settings.provider_env)
    vault = CredentialVault(
        db,
        keys.ring,
        digests=keys.digests,
        http=provider_http,
        bases=bases,
        ring_file=None if settings.kek else settings.kek_file,
    )
    catalog = ModelCatalog(db, plans=PLANS)
    reconciler = TenantReconciler(
        lifecycle,
        runtime,
        vault=vault,
        catalog=catalog,
        platform_models_url=settings.platform_models_url,
        provider_bases={
            "openai": bases.openai,
            "anthropic": bases.anthropic,
            "whatsapp": bases.whatsapp,
            "discord": bases.discord,
            "telegram": bases.telegram,
        },
        plan_budgets=plan_budgets(settings.plan_budgets),
        control_plane_url=settings.internal_url,
        channel_webhooks=settings.public_url is not None,
        concurrency=settings.reconcile_concurrency,
        resync_interval=settings.resync_interval,
    )
    admin_tokens = AdminTokens(db, keys.digests)
    jwt_ring, jwt_generated = load_or_create_jwt_keys(settings.jwt_keys, settings.jwt_keys_file)
    if jwt_generated:
        log.warning(
            "generated a token signing key in %s; in production supply TENANTRY_JWT_KEYS",
            settings.jwt_keys_file,
        )
    access = AccessTokens(jwt_ring, ttl=settings.access_token_ttl)
    api_tokens = ApiTokenService(db, keys.digests)
    users = UserService(db)
    redis_client = _redis(settings.redis_url)
    limits = ThrottleLimits(
        per_account=settings.login_attempts_per_account,
        per_address=settings.login_attempts_per_address,
        window=settings.login_window,
    )
    throttle = _throttle(redis_client, limits)
    vault.on_change = reconciler.notify
    gateway_link = GatewayLink(db, keys.digests)
    channels = ChannelDirectory(
        db,
        keys.digests.digest,
        bot_username=settings.telegram_platform_bot_username,
        redeem_throttle=_throttle(redis_client, REDEEM_LIMITS),
        issue_throttle=_throttle(redis_client, ISSUE_LIMITS),
    )
    platform_bot = PlatformBot(
        settings.telegram_platform_bot_token,
        bases.telegram,
        channels,
        Forwarder(db, gateway_link),
        webhook_secret=keys.digests.webhook_secret("telegram-platform"),
        public_url=settings.public_url,
    )
    catalog.on_change = reconciler.notify_every_tenant
    services: dict[str, Any] = {
        "settings": settings,
        "db": db,
        "signal": signal,
        "reconciler": reconciler,
        "vault": vault,
        "tenants": TenantService(db, signal, vault, on_change=reconciler.notify),
        "gateway_keys": GatewayKeyService(db, signal, keys.digests, on_change=reconciler.notify),
        "admin_tokens": admin_tokens,
        "authenticator": Authenticator(db, admin_tokens, access, api_tokens),
        "users": users,
        "sessions": SessionService(
            db,
            users,
            access,
            keys.digests,
            throttle,
            refresh_ttl=settings.refresh_token_ttl,
        ),
        "api_tokens": api_tokens,
        "members": MembershipService(db, keys.digests),
        "audit_log": AuditLog(db),
        "catalog": catalog,
        "usage": UsageLedger(db),
        "gateway_link": gateway_link,
        "channels": channels,
        "platform_bot": platform_bot,
        "tenant_bots": TenantBots(
            gateway_link, provider_http, bases.telegram, keys.digests, settings.public_url
        ),
    }

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await asyncio.to_thread(
            migrate.upgrade,
            settings.schema_owner_url,
            rekey_digest=keys.digests.rekey_sha256,
            app_url=settings.database_url,
        )
        if await asyncio.to_thread(migrate.bypasses_row_security, settings.database_url):
            log.warning(
                "TENANTRY_DATABASE_URL connects as a PostgreSQL superuser or a BYPASSRLS role: "
                "row-level security does not bind it. Connect as a role that does not own the "
                "tables and set TENANTRY_DATABASE_MIGRATION_URL to the owner."
            )
        token = await admin_tokens.ensure_first(settings.admin_token_file)
        if token is not None and on_first_token is not None:
            on_first_token(token)
        if reconcile:
            await reconciler.start()
        else:
            reconciler.started.set()
        await platform_bot.start()
        try:
            yield
        finally:
            await platform_bot.stop()
            await reconciler.stop()
            await runtime.close()
            await gateway_link.close()
            await provider_http.aclose()
            if redis_client is not None:
                await redis_client.aclose()
            await db.close()

    return Litestar(
        route_handlers=[
            AuthController,
            UserController,
            ApiTokenController,
            TenantController,
            GatewayKeyController,
            CredentialController,
            MemberController,
            InvitationController,
            ChannelController,
            accept_invitation,
            AuditController,
            ModelCatalogController,
            tenant_models,
            unseal_gateway,
            ingest_usage,
            tenant_usage,
            channel_webhook,
            platform_bot_webhook,
            platform_bot_reply,
            platform_bot_typing,
            healthz,
            readyz,
            MetricsController,
        ],
        dependencies={
            **{name: _from_state(name) for name in STATE_DEPENDENCIES},
            "tenant_id": Provide(_tenant_id, sync_to_thread=False),
        },
        guards=[authorize],
        state=State(services),
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            PrometheusConfig(app_name="tenantry_control_plane", group_path=True).middleware
        ],
        openapi_config=OpenAPIConfig(
            title="Tenantry control plane", version=VERSION, path="/schema"
        ),
        logging_config=None,
        debug=False,
    )
