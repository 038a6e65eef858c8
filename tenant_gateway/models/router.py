"""Which provider answers a request for a model, and what happens when it fails.

Names resolve in this order: the tenant's aliases (``model_aliases`` in the bundle, followed
a few hops); ``byok/<provider>/<model>`` for a model of a provider the tenant holds a key for
(``openai``, ``anthropic``, ``openai_compatible``); otherwise a platform model — one of the
catalog's (``platform_models``) when the bundle has a catalog, else any name, sent to the
fleet at ``platform_models_url``. A request's *chain* is the model asked for followed by its
``model_fallbacks``.

Each model of the chain is tried in turn. A failure worth repeating (a connection never
made, 408/409/429/5xx/529) is tried again up to ``upstream_retries`` times, waiting what the
provider's ``Retry-After`` says (when that is longer than ``retry_after_max``, the next model
is tried at once instead) or a short backoff. A provider that fails ``cooldown_failures``
requests in a row rests for ``cooldown_seconds``: its models are skipped meanwhile, and a
chain with nothing else left answers 503 with ``Retry-After``. Errors that another model
could not fix (a malformed request) end the chain at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tenant_gateway.contract import GatewayBundle
from tenant_gateway.models.anthropic import Anthropic
from tenant_gateway.models.errors import (
    NoModelConfigured,
    ProvidersCoolingDown,
    UnknownModel,
    UpstreamBadAnswer,
    UpstreamError,
    UpstreamFailed,
    UpstreamUnavailable,
)
from tenant_gateway.models.providers import (
    BYOK_PROVIDERS,
    ChatCall,
    ModelCard,
    ModelList,
    OpenAICompatible,
    Provider,
)
from tenant_gateway.models.transport import AnswerStream, ModelClient, UpstreamReply
from tenant_gateway.settings import GatewayError, GatewaySettings

log = logging.getLogger(__name__)

BYOK_PREFIX = "byok/"
DEFAULT_BASES = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
_MAX_ALIAS_HOPS = 8

T = TypeVar("T")


class CredentialSource(Protocol):
    """The tenant's unsealed credentials (the gateway's credential keeper)."""

    @property
    def providers(self) -> list[str]: ...

    def get(self, provider: str) -> Mapping[str, str]:
        """The credential's fields; raises a :class:`GatewayError` saying why when absent."""
        ...


@dataclass(frozen=True)
class Target:
    """One model of a chain: who serves it, and under which name."""

    name: str
    """The model's name as the tenant knows it (after aliases)."""
    provider: Provider
    upstream_model: str
    byok: bool

    @property
    def key(self) -> str:
        """Identifies the provider for cooldowns: its kind and base URL."""
        return f"{self.provider.kind} {self.provider.base_url}"


def failure_reason(exc: UpstreamError) -> str:
    """A low-cardinality name for what went wrong, for metrics."""
    if isinstance(exc, UpstreamFailed):
        if exc.status == 429:
            return "rate_limited"
        return "server_error" if exc.status >= 500 else "client_error"
    if isinstance(exc, UpstreamUnavailable):
        return "unreachable"
    return "bad_answer" if isinstance(exc, UpstreamBadAnswer) else "error"


class Cooldowns:
    """Providers resting after failing ``failures`` requests in a row."""

    def __init__(self, failures: int, seconds: float, clock: Callable[[], float]) -> None:
        self.failures = failures
        self.seconds = seconds
        self._clock = clock
        self._streak: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def resting(self, key: str) -> float:
        """Seconds ``key`` still rests (0: it may be called)."""
        until = self._until.get(key)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._until[key]
            return 0.0
        return left

    def failed(self, key: str) -> None:
        streak = self._streak.get(key, 0) + 1
        self._streak[key] = streak
        if streak >= self.failures:
            self._streak[key] = 0
            self._until[key] = self._clock() + self.seconds
            log.warning(
                "model provider %s rests for %gs after %d failures", key, self.seconds, streak
            )

    def succeeded(self, key: str) -> None:
        self._streak.pop(key, None)


class ModelRouter:
    """Resolves model names to providers and calls them with retries, fallbacks, cooldowns."""

    def __init__(
        self,
        settings: GatewaySettings,
        bundle: Callable[[], GatewayBundle],
        credentials: CredentialSource,
        client: ModelClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self._bundle = bundle
        self._credentials = credentials
        self.client = client
        self._clock = clock
        self._sleep = sleep
        self.cooldowns = Cooldowns(settings.cooldown_failures, settings.cooldown_seconds, clock)
        self._listings: dict[str, tuple[float, list[ModelCard]]] = {}
        self.observe_failure: Callable[[str, str], None] | None = None
        """Told ``(provider kind, reason)`` of every failed attempt; feeds the metrics."""

    # -- names ----------------------------------------------------------------------------

    def platform_endpoint(self) -> str | None:
        """The fleet's base URL in force: the bundle's, else the environment's."""
        return self._bundle().platform_models_url or self.settings.platform_models_url

    def _unalias(self, name: str, bundle: GatewayBundle) -> str:
        seen = [name]
        while name in bundle.model_aliases:
            name = bundle.model_aliases[name]
            if name in seen or len(seen) > _MAX_ALIAS_HOPS:
                raise UnknownModel(f"the model aliases {' -> '.join([*seen, name])} go in a circle")
            seen.append(name)
        return name

    def _byok(self, name: str, bundle: GatewayBundle) -> Target:
        _, provider, model = [*name.split("/", 2), "", ""][:3]
        if provider not in BYOK_PROVIDERS or not model:
            raise UnknownModel(
                f"no model {name!r}: bring-your-own-key models are named "
                f"byok/<provider>/<model> with provider one of {', '.join(BYOK_PROVIDERS)}"
            )
        fields = self._credentials.get(provider)
        served: Provider
        if provider == "anthropic":
            base = bundle.provider_bases.get("anthropic", DEFAULT_BASES["anthropic"])
            served = Anthropic(base, self.client, fields["api_key"])
        elif provider == "openai":
            base = bundle.provider_bases.get("openai", DEFAULT_BASES["openai"])
            served = OpenAICompatible("openai", base, self.client, fields["api_key"])
        else:
            served = OpenAICompatible(
                "openai_compatible", fields["base_url"], self.client, fields.get("api_key")
            )
        return Target(name=name, provider=served, upstream_model=model, byok=True)

    def _platform(self, name: str, bundle: GatewayBundle) -> Target:
        if bundle.platform_catalog or bundle.platform_models:
            for model in bundle.platform_models:
                if model.name == name:
                    served = OpenAICompatible("platform", model.base_url, self.client)
                    upstream = model.served_model_name or model.name
                    return Target(name=name, provider=served, upstream_model=upstream, byok=False)
            raise UnknownModel(
                f"no model {name!r} for this tenant; GET /v1/models lists the ones it has"
            )
        endpoint = self.platform_endpoint()
        if endpoint is None:
            raise NoModelConfigured()
        served = OpenAICompatible("platform", endpoint, self.client)
        return Target(name=name, provider=served, upstream_model=name, byok=False)

    def target(self, name: str) -> Target:
        """The provider and upstream name of the model called ``name`` (aliases followed)."""
        bundle = self._bundle()
        resolved = self._unalias(name, bundle)
        if resolved.startswith(BYOK_PREFIX):
            return self._byok(resolved, bundle)
        return self._platform(resolved, bundle)

    def chain(self, name: str) -> list[Target]:
        """The models to try for a request for ``name``, in order.

        Models of the chain that cannot be used (no key for their provider, unknown) are
        left out; when none is left, the first model's reason is raised.
        """
        bundle = self._bundle()
        fallbacks = bundle.model_fallbacks.get(name)
        if fallbacks is None:
            fallbacks = bundle.model_fallbacks.get(self._unalias(name, bundle), [])
        targets: list[Target] = []
        first_error: GatewayError | None = None
        for candidate in [name, *fallbacks]:
            try:
                targets.append(self.target(candidate))
            except NoModelConfigured:
                raise
            except GatewayError as exc:
                first_error = first_error or exc
        if not targets:
            assert first_error is not None
            raise first_error
        return targets

    # -- calls ----------------------------------------------------------------------------

    def _retry_wait(self, exc: UpstreamError, attempt: int) -> float | None:
        if not exc.retryable or attempt >= self.settings.upstream_retries:
            return None
        if exc.retry_after is not None:
            return exc.retry_after if exc.retry_after <= self.settings.retry_after_max else None
        return float(self.settings.retry_backoff * 2**attempt)

    async def _on(self, target: Target, call: Callable[[Target], Awaitable[T]]) -> T:
        """``call(target)``, tried again while its failure is worth repeating."""
        attempt = 0
        while True:
            try:
                result = await call(target)
            except UpstreamError as exc:
                if self.observe_failure is not None:
                    self.observe_failure(target.provider.kind, failure_reason(exc))
                wait = self._retry_wait(exc, attempt)
                if wait is None:
                    if exc.retryable and exc.provider_fault:
                        self.cooldowns.failed(target.key)
                    raise
                log.info("retrying %s in %.2fs after: %s", target.name, wait, exc.detail)
                await self._sleep(wait)
                attempt += 1
                continue
            self.cooldowns.succeeded(target.key)
            return result

    async def _through(
        self, targets: list[Target], call: Callable[[Target], Awaitable[T]]
    ) -> tuple[T, Target]:
        last: UpstreamError | None = None
        resting: list[float] = []
        for target in targets:
            rest = self.cooldowns.resting(target.key)
            if rest > 0:
                resting.append(rest)
                continue
            try:
                return await self._on(target, call), target
            except UpstreamError as exc:
                if not exc.falls_back:
                    raise
                last = exc
                log.info(
                    "model %s failed (%s); trying the next of its chain", target.name, exc.detail
                )
        if last is not None:
            raise last
        names = ", ".join(t.name for t in targets)
        raise ProvidersCoolingDown(
            f"the providers of {names} failed repeatedly and rest for a while; try again later",
            retry_after=min(resting),
        )

    async def complete(self, body: bytes, model: str) -> tuple[UpstreamReply, Target]:
        """A complete answer from the first model of ``model``'s chain that gives one."""

        async def call(target: Target) -> UpstreamReply:
            return await target.provider.complete(self._call(body, model, target, stream=False))

        return await self._through(self.chain(model), call)

    async def stream(self, body: bytes, model: str) -> tuple[AnswerStream, Target]:
        """A stream from the first model of the chain that starts one (retries happen only
        before the answer's head has arrived)."""

        async def call(target: Target) -> AnswerStream:
            return await target.provider.stream(self._call(body, model, target, stream=True))

        return await self._through(self.chain(model), call)

    @staticmethod
    def _call(body: bytes, model: str, target: Target, *, stream: bool) -> ChatCall:
        return ChatCall(
            body=body, upstream_model=target.upstream_model, requested_model=model, stream=stream
        )

    # -- model list -----------------------------------------------------------------------

    async def _listing(self, provider: Provider, secret: str | None) -> list[ModelCard]:
        digest = hashlib.sha256((secret or "").encode()).hexdigest()[:16]
        key = f"{provider.kind} {provider.base_url} {digest}"
        now = self._clock()
        cached = self._listings.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        models = await provider.list_models()
        self._listings[key] = (self._clock() + self.settings.models_cache_ttl, models)
        return models

    async def list_models(self) -> ModelList:
        """The platform's models, the BYOK providers' (as ``byok/<provider>/<id>``) and the
        tenant's aliases. A BYOK provider that cannot list is left out (and logged)."""
        bundle = self._bundle()
        cards: list[ModelCard] = []
        catalog = bundle.platform_catalog or bool(bundle.platform_models)
        if catalog:
            cards += [ModelCard(id=m.name, owned_by="platform") for m in bundle.platform_models]
        held = [p for p in BYOK_PROVIDERS if p in self._credentials.providers]
        if not catalog and (endpoint := self.platform_endpoint()) is not None:
            platform = OpenAICompatible("platform", endpoint, self.client)
            try:
                cards += await self._listing(platform, None)
            except UpstreamError as exc:
                if not held:
                    raise
                log.warning("cannot list the platform's models: %s", exc.detail)
        listings = await asyncio.gather(
            *(self._byok_listing(p, bundle) for p in held), return_exceptions=True
        )
        for provider, listing in zip(held, listings, strict=True):
            if isinstance(listing, BaseException):
                detail = listing.detail if isinstance(listing, GatewayError) else repr(listing)
                log.warning("cannot list the %s models: %s", provider, detail)
                continue
            cards += [
                ModelCard(
                    id=f"{BYOK_PREFIX}{provider}/{m.id}", created=m.created, owned_by=provider
                )
                for m in listing
            ]
        cards += [ModelCard(id=alias, owned_by="alias") for alias in bundle.model_aliases]
        return ModelList(data=cards)

    async def _byok_listing(self, provider: str, bundle: GatewayBundle) -> list[ModelCard]:
        target = self._byok(f"{BYOK_PREFIX}{provider}/-", bundle)
        secret = self._credentials.get(provider).get("api_key")
        return await self._listing(target.provider, secret)
