"""The providers whose credentials the vault keeps, and how each one's credential is checked.

An admin stores a tenant's credential for a provider (``PUT
/api/v1/tenants/{id}/credentials/{provider}``). This module says, per provider, which fields
that credential has (:class:`CredentialField`), how the submitted fields are normalised
(:func:`check_fields`), which of them may be shown back (:func:`public_fields`, :func:`hint`)
and how the credential is validated: the provider's cheapest authenticated call
(:meth:`Provider.validate`) — listing models for OpenAI, Anthropic and OpenAI-compatible
servers, ``getMe`` for a Telegram bot, the phone number for WhatsApp, the bot user for Discord.

Adding a provider is one :class:`Provider` entry in ``_REGISTRY``.

Errors::

    ProviderError
    ├── UnknownProvider          no such provider (names the known ones)
    ├── InvalidCredentialFields  a field is missing, unknown, empty or malformed
    ├── CredentialRefused        the provider answered that the credential is not valid (4xx)
    └── ProviderUnreachable      no verdict: connection error, timeout, 429, 5xx, unusable answer

No secret value ever appears in an exception message, a log line or a repr. Telegram puts
the bot token in the URL path, so a failed call's httpx exception (which may show the URL)
is not chained, and httpx's own ``HTTP Request: GET <url>`` log line has the secrets of the
call being made replaced by ``…`` (a filter on the ``httpx`` logger, installed on import).

Validation uses the caller's ``httpx.AsyncClient``; give it :data:`VALIDATION_TIMEOUT`
(``httpx.Timeout(10.0)``). A timeout becomes :class:`ProviderUnreachable` ("timed out after
…"). Redirects are never followed, so a credential cannot be sent on to another host.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

import httpx
import msgspec

VALIDATION_TIMEOUT = httpx.Timeout(10.0)
"""The timeout callers should give the client they pass to :meth:`Provider.validate`."""

ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header Anthropic requires on every call."""

_MAX_BODY = 16 * 1024 * 1024
"""Largest answer read from a provider (big OpenAI-compatible model lists run to megabytes)."""

_MAX_PROVIDER_MESSAGE = 200
"""A provider's error text longer than this is left out of our messages."""


# -- errors ----------------------------------------------------------------------------------


class ProviderError(Exception):
    """Root of the errors this module raises; ``provider`` names the provider concerned."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(message)
        self.provider = provider
        self.message = message


class UnknownProvider(ProviderError):
    """No provider has that name."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        shown = name if len(name) <= 64 else f"{name[:64]}…"
        super().__init__(
            name, f"unknown provider {shown!r}; known providers: {', '.join(sorted(known))}"
        )
        self.known = tuple(sorted(known))


class InvalidCredentialFields(ProviderError):
    """A submitted field is missing, unknown, empty or malformed. The message names the field
    and the problem, never the value."""

    def __init__(self, provider: str, field: str, problem: str) -> None:
        shown = field if len(field) <= 64 else f"{field[:64]}…"
        super().__init__(provider, f"{provider} credential field {shown!r}: {problem}")
        self.field = field
        self.problem = problem


class CredentialRefused(ProviderError):
    """The provider answered (with a 4xx status) that the credential is not valid.

    ``provider_message`` is the provider's own error text when it is short, with anything
    resembling the credential (such as OpenAI's masked echo of the key) replaced by ``…``.
    """

    def __init__(
        self, provider: str, status: int, provider_message: str | None = None, advice: str = ""
    ) -> None:
        message = f"{provider} refused the credential (HTTP {status})"
        if provider_message:
            message += f": {provider_message}"
        if advice:
            message += f"; {advice}"
        super().__init__(provider, message)
        self.status = status
        self.provider_message = provider_message


class ProviderUnreachable(ProviderError):
    """The credential could not be checked: the provider could not be reached, timed out,
    failed (5xx) or answered something unusable. ``base_url`` is where it was asked."""

    def __init__(
        self, provider: str, base_url: str, reason: str, status: int | None = None
    ) -> None:
        super().__init__(provider, f"could not reach {provider} at {base_url}: {reason}")
        self.base_url = base_url
        self.reason = reason
        self.status = status


# -- shapes ----------------------------------------------------------------------------------


class CredentialField(msgspec.Struct, frozen=True):
    """One field of a provider's credential, as an admin submits it."""

    name: str
    secret: bool
    required: bool = True
    kind: Literal["text", "url"] = "text"
    pattern: str | None = None
    """If set, the (stripped) value must match this regular expression entirely."""
    shape: str = ""
    """How a value matching ``pattern`` looks, for the error message."""


class ProviderBases(msgspec.Struct, frozen=True):
    """Where credentials are validated; the real services unless tests or air-gapped setups
    point elsewhere (:func:`provider_bases_from_env`)."""

    openai: str = "https://api.openai.com/v1"
    """OpenAI's API base, ending in ``/v1``."""
    anthropic: str = "https://api.anthropic.com"
    """Anthropic's API origin (``/v1/models`` is appended)."""
    telegram: str = "https://api.telegram.org"
    """A Telegram Bot API server, taking ``/bot<token>/<method>`` paths."""
    whatsapp: str = "https://graph.facebook.com/v21.0"
    """Meta's Graph API, with its version (``/{phone_number_id}/messages`` is appended)."""
    discord: str = "https://discord.com/api/v10"
    """Discord's HTTP API, with its version."""


_BASE_VARIABLES: tuple[tuple[str, str], ...] = (
    ("openai", "TENANTRY_OPENAI_API_BASE"),
    ("anthropic", "TENANTRY_ANTHROPIC_API_BASE"),
    ("telegram", "TENANTRY_TELEGRAM_API_BASE"),
    ("whatsapp", "TENANTRY_WHATSAPP_API_BASE"),
    ("discord", "TENANTRY_DISCORD_API_BASE"),
)


def provider_bases_from_env(env: Mapping[str, str]) -> ProviderBases:
    """The bases from ``TENANTRY_{OPENAI,ANTHROPIC,TELEGRAM,WHATSAPP,DISCORD}_API_BASE``
    (unset or empty: the real service). A bad URL raises :class:`ValueError` naming the variable."""
    chosen: dict[str, str] = {}
    for attribute, variable in _BASE_VARIABLES:
        raw = env.get(variable, "").strip()
        if not raw:
            continue
        try:
            chosen[attribute] = _normalise_url(raw)
        except ValueError as exc:
            raise ValueError(f"{variable}: {exc}") from None
    return ProviderBases(**chosen)


Probe = Callable[["Provider", dict[str, str], httpx.AsyncClient, ProviderBases], Awaitable[None]]
"""``probe(provider, checked_values, client, bases)``: make the provider's cheapest
authenticated call and raise :class:`CredentialRefused` or :class:`ProviderUnreachable`."""


@dataclass(frozen=True, slots=True)
class Provider:
    """A provider whose credentials the vault keeps."""

    name: str
    """The name in URLs and in storage: lowercase letters, digits and ``_``."""
    title: str
    """The name people read."""
    fields: tuple[CredentialField, ...]
    hint_field: str
    """The secret field whose last four characters make the masked hint."""
    probe: Probe = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"provider name {self.name!r} is not a lowercase identifier")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"provider {self.name}: field names repeat")
        if not any(f.name == self.hint_field and f.secret for f in self.fields):
            raise ValueError(f"provider {self.name}: hint_field must name a secret field")

    async def validate(
        self, values: Mapping[str, str], client: httpx.AsyncClient, bases: ProviderBases
    ) -> None:
        """Check the credential with the provider's cheapest authenticated call.

        ``values`` go through :func:`check_fields` first. Raises
        :class:`InvalidCredentialFields`, :class:`CredentialRefused` or
        :class:`ProviderUnreachable`; returns if the provider accepted the credential.
        """
        await self.probe(self, check_fields(self, values), client, bases)


# -- fields ----------------------------------------------------------------------------------


def _normalise_url(raw: str) -> str:
    """``raw`` without trailing ``/`` if it is an http(s) URL with a host; else ValueError
    saying what is wrong (without repeating the value)."""
    if any(c.isspace() or not c.isprintable() for c in raw):
        raise ValueError("must be a URL without spaces")
    try:
        parts = urlsplit(raw)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not host:
        raise ValueError("must be a URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user name or password")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query (?…) or fragment (#…)")
    return raw.rstrip("/")


def _printable_ascii(value: str) -> bool:
    return all("!" <= c <= "~" for c in value)


def check_fields(provider: Provider, values: Mapping[str, object]) -> dict[str, str]:
    """The submitted ``values`` checked and normalised for ``provider``: strings, stripped;
    URLs http(s) with a host and no trailing ``/``; secrets printable ASCII without spaces.
    Optional fields left out or empty are omitted. Raises :class:`InvalidCredentialFields`
    naming the (first) bad field."""
    declared = {f.name for f in provider.fields}
    unknown = sorted(str(name) for name in values if name not in declared)
    if unknown:
        known = ", ".join(f.name for f in provider.fields)
        raise InvalidCredentialFields(
            provider.name, unknown[0], f"is not a field of this provider (fields: {known})"
        )
    checked: dict[str, str] = {}
    for spec in provider.fields:
        raw = values.get(spec.name)
        if raw is None:
            if spec.required:
                raise InvalidCredentialFields(provider.name, spec.name, "is required")
            continue
        if not isinstance(raw, str):
            raise InvalidCredentialFields(provider.name, spec.name, "must be a string")
        value = raw.strip()
        if not value:
            if spec.required:
                raise InvalidCredentialFields(provider.name, spec.name, "must not be empty")
            continue
        if spec.secret and not _printable_ascii(value):
            raise InvalidCredentialFields(
                provider.name, spec.name, "must be printable ASCII without spaces"
            )
        if spec.kind == "url":
            try:
                value = _normalise_url(value)
            except ValueError as exc:
                raise InvalidCredentialFields(provider.name, spec.name, str(exc)) from None
        if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
            raise InvalidCredentialFields(
                provider.name, spec.name, spec.shape or "does not have the expected form"
            )
        checked[spec.name] = value
    return checked


def public_fields(provider: Provider, values: Mapping[str, str]) -> dict[str, str]:
    """The non-secret fields of ``values`` (such as ``base_url``), which may be shown."""
    return {f.name: values[f.name] for f in provider.fields if not f.secret and f.name in values}


def hint(provider: Provider, values: Mapping[str, str]) -> str:
    """``…`` and the last four characters of the hint field; only ``…`` if the value is
    shorter than 12 characters, so a short secret is not half revealed."""
    value = values.get(provider.hint_field, "")
    return f"…{value[-4:]}" if len(value) >= 12 else "…"


# -- calling providers ------------------------------------------------------------------------

_secrets_in_flight: ContextVar[tuple[str, ...]] = ContextVar("_secrets_in_flight", default=())


class _RedactSecrets(logging.Filter):
    """Replaces the secrets of the call this task is making with ``…`` in httpx's records
    (its ``HTTP Request: GET <url>`` line shows a Telegram bot token in the path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _secrets_in_flight.get()
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return True
        redacted = _redact(message, secrets)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_REDACT_FILTER = _RedactSecrets()
logging.getLogger("httpx").addFilter(_REDACT_FILTER)


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "…")
    return text


def _shares_run(word: str, secrets: tuple[str, ...]) -> bool:
    """Whether ``word`` has four consecutive characters of a secret (shorter secrets: all)."""
    for secret in secrets:
        run = min(4, len(secret))
        if run and any(word[i : i + run] in secret for i in range(len(word) - run + 1)):
            return True
    return False


def _provider_text(raw: object, secrets: tuple[str, ...]) -> str | None:
    """A provider's error text fit to quote: short, one line, with every word that shares
    four characters with a secret (a masked echo of the key, say) replaced by ``…``."""
    if not isinstance(raw, str):
        return None
    words = "".join(c if c.isprintable() else " " for c in raw).split()
    text = " ".join("…" if _shares_run(w, secrets) else w for w in words)
    return text if 0 < len(text) <= _MAX_PROVIDER_MESSAGE else None


def _error_text(body: bytes) -> object:
    """The error text in a provider's JSON error body, whichever of the usual shapes it has:
    OpenAI's and Anthropic's ``error.message``, ``error`` as a string, ``message``,
    ``detail``, Telegram's ``description``."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):
        return error.get("message")
    if isinstance(error, str):
        return error
    for key in ("message", "detail", "description"):
        if isinstance(data.get(key), str):
            return data[key]
    return None


class _Answer(NamedTuple):
    status: int
    body: bytes


def _shown_base(base: str) -> str:
    """``base`` as error messages show it: never with a user name or password."""
    try:
        parts = urlsplit(base)
    except ValueError:
        return "(an invalid URL)"
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    return parts.geturl()


_TIMEOUT_KINDS: tuple[tuple[type[httpx.TimeoutException], str], ...] = (
    (httpx.ConnectTimeout, "connect"),
    (httpx.ReadTimeout, "read"),
    (httpx.WriteTimeout, "write"),
    (httpx.PoolTimeout, "pool"),
)


def _timed_out(client: httpx.AsyncClient, exc: httpx.TimeoutException) -> str:
    for kind, phase in _TIMEOUT_KINDS:
        if isinstance(exc, kind):
            seconds: float | None = getattr(client.timeout, phase)
            if seconds is not None:
                return f"timed out after {seconds:g}s (waiting to {phase})"
    return "timed out"


async def _get(
    provider: Provider,
    client: httpx.AsyncClient,
    base: str,
    path: str,
    headers: dict[str, str],
    secrets: tuple[str, ...],
) -> _Answer:
    """``GET {base}{path}``: the answer, or :class:`ProviderUnreachable` on a transport
    failure. Never follows redirects and never uses the client's own auth."""
    url = f"{base}{path}"
    secret_in_url = any(s and s in url for s in secrets)
    token = _secrets_in_flight.set(secrets if secret_in_url else ())
    failure: ProviderUnreachable
    cause: BaseException | None
    try:
        async with client.stream(
            "GET", url, headers=headers, auth=None, follow_redirects=False
        ) as response:
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > _MAX_BODY:
                    raise ProviderUnreachable(
                        provider.name,
                        _shown_base(base),
                        f"answered more than {_MAX_BODY // (1024 * 1024)} MiB",
                    )
            return _Answer(response.status_code, body)
    except httpx.TimeoutException as exc:
        failure = ProviderUnreachable(provider.name, _shown_base(base), _timed_out(client, exc))
        cause = exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        text = " ".join(_redact(str(exc), secrets).split())
        reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        failure = ProviderUnreachable(provider.name, _shown_base(base), reason)
        cause = exc
    finally:
        _secrets_in_flight.reset(token)
    # Raised outside the except blocks: when the URL carries a secret, the httpx exception
    # (whose message and request show the URL) is neither the cause nor the context.
    raise failure from (None if secret_in_url else cause)


def _judge(
    provider: Provider,
    base: str,
    answer: _Answer,
    secrets: tuple[str, ...],
    *,
    advice_404: str = "",
) -> None:
    """Return on a 2xx answer; else raise what its status means."""
    status = answer.status
    if 200 <= status < 300:
        return
    text = _provider_text(_error_text(answer.body), secrets)
    if status == 429:  # says nothing about the key: no verdict
        reason = "rate-limited (HTTP 429); try again later, or store it without ?validate=true" + (
            f": {text}" if text else ""
        )
        raise ProviderUnreachable(provider.name, _shown_base(base), reason, status)
    if 400 <= status < 500:
        raise CredentialRefused(provider.name, status, text, advice_404 if status == 404 else "")
    if 300 <= status < 400:
        reason = f"answered with a redirect (HTTP {status}); give the final address"
    else:
        reason = f"answered HTTP {status}" + (f": {text}" if text else "")
    raise ProviderUnreachable(provider.name, _shown_base(base), reason, status)


class _ModelList(msgspec.Struct):
    """What OpenAI-style and Anthropic ``GET …/models`` answer (the part we look at)."""

    data: list[Any]


class _TelegramUser(msgspec.Struct):
    id: int
    is_bot: bool
    first_name: str = ""
    username: str | None = None


class _TelegramAnswer(msgspec.Struct):
    """Every Bot API answer: ``ok`` and ``result``, or ``error_code`` and ``description``."""

    ok: bool
    result: _TelegramUser | None = None
    error_code: int | None = None
    description: str = ""


def _secrets(provider: Provider, values: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(values[f.name] for f in provider.fields if f.secret and values.get(f.name))


def _expect_model_list(provider: Provider, base: str, answer: _Answer, what: str) -> None:
    try:
        msgspec.json.decode(answer.body, type=_ModelList)
    except msgspec.DecodeError:
        raise ProviderUnreachable(
            provider.name,
            _shown_base(base),
            f"answered HTTP {answer.status} but not with {what} model list",
            answer.status,
        ) from None


def _openai_style(
    base_of: Callable[[ProviderBases, dict[str, str]], str], *, advice_404: str = ""
) -> Probe:
    """``GET {base}/models`` with ``Authorization: Bearer <api_key>``."""

    async def probe(
        provider: Provider, values: dict[str, str], client: httpx.AsyncClient, bases: ProviderBases
    ) -> None:
        base = base_of(bases, values)
        secrets = _secrets(provider, values)
        headers = {"authorization": f"Bearer {values['api_key']}", "accept": "application/json"}
        answer = await _get(provider, client, base, "/models", headers, secrets)
        _judge(provider, base, answer, secrets, advice_404=advice_404)
        _expect_model_list(provider, base, answer, "an OpenAI")

    return probe


async def _anthropic_models(
    provider: Provider, values: dict[str, str], client: httpx.AsyncClient, bases: ProviderBases
) -> None:
    """``GET {anthropic}/v1/models`` with ``x-api-key`` and ``anthropic-version``."""
    base = bases.anthropic
    secrets = _secrets(provider, values)
    headers = {
        "x-api-key": values["api_key"],
        "anthropic-version": ANTHROPIC_VERSION,
        "accept": "application/json",
    }
    answer = await _get(provider, client, base, "/v1/models", headers, secrets)
    _judge(provider, base, answer, secrets)
    _expect_model_list(provider, base, answer, "an Anthropic")


async def _telegram_get_me(
    provider: Provider, values: dict[str, str], client: httpx.AsyncClient, bases: ProviderBases
) -> None:
    """``GET {telegram}/bot<token>/getMe``; Telegram answers 401 for a wrong token and 404
    for one it cannot parse, both a refusal."""
    base = bases.telegram
    secrets = _secrets(provider, values)
    answer = await _get(provider, client, base, f"/bot{values['token']}/getMe", {}, secrets)
    _judge(provider, base, answer, secrets)
    try:
        reply = msgspec.json.decode(answer.body, type=_TelegramAnswer)
    except msgspec.DecodeError:
        reply = None
    if reply is None or not reply.ok or reply.result is None or not reply.result.is_bot:
        raise ProviderUnreachable(
            provider.name,
            _shown_base(base),
            f"answered HTTP {answer.status} but not with a bot's getMe result",
            answer.status,
        )


async def _whatsapp_phone_number(
    provider: Provider, values: dict[str, str], client: httpx.AsyncClient, bases: ProviderBases
) -> None:
    """``GET {graph}/{phone_number_id}`` with the access token: Meta answers 401 for a bad
    token and 400 for a phone number the token may not use."""
    base = bases.whatsapp
    secrets = _secrets(provider, values)
    headers = {"authorization": f"Bearer {values['access_token']}", "accept": "application/json"}
    path = f"/{values['phone_number_id']}"
    _judge(provider, base, await _get(provider, client, base, path, headers, secrets), secrets)


async def _discord_bot(
    provider: Provider, values: dict[str, str], client: httpx.AsyncClient, bases: ProviderBases
) -> None:
    """``GET {discord}/users/@me`` as the bot (``Authorization: Bot <token>``)."""
    base = bases.discord
    secrets = _secrets(provider, values)
    headers = {"authorization": f"Bot {values['bot_token']}", "accept": "application/json"}
    answer = await _get(provider, client, base, "/users/@me", headers, secrets)
    _judge(provider, base, answer, secrets)


# -- the registry -----------------------------------------------------------------------------

_API_KEY = CredentialField("api_key", secret=True)


def _digits_field(name: str, where: str) -> CredentialField:
    """A platform's numeric id, shown (not secret): the digits of the ``where``."""
    return CredentialField(
        name, secret=False, pattern=r"[0-9]{1,32}", shape=f"must be the digits of the {where}"
    )


_REGISTRY: tuple[Provider, ...] = (
    Provider(
        name="openai",
        title="OpenAI",
        fields=(_API_KEY,),
        hint_field="api_key",
        probe=_openai_style(lambda bases, _values: bases.openai),
    ),
    Provider(
        name="anthropic",
        title="Anthropic",
        fields=(_API_KEY,),
        hint_field="api_key",
        probe=_anthropic_models,
    ),
    Provider(
        name="openai_compatible",
        title="OpenAI-compatible API",
        fields=(_API_KEY, CredentialField("base_url", secret=False, kind="url")),
        hint_field="api_key",
        probe=_openai_style(
            lambda _bases, values: values["base_url"],
            advice_404="check base_url: it should be the API base, usually ending in /v1",
        ),
    ),
    Provider(
        name="telegram_bot",
        title="Telegram bot",
        fields=(
            CredentialField(
                "token",
                secret=True,
                pattern=r"[0-9]+:[A-Za-z0-9_-]{35,}",
                shape="must look like 123456789:AAE… (digits, a colon, then 35 or more "
                "letters, digits, - or _), as @BotFather gives it",
            ),
        ),
        hint_field="token",
        probe=_telegram_get_me,
    ),
    Provider(
        name="whatsapp",
        title="WhatsApp Business (Cloud API)",
        fields=(
            CredentialField("access_token", secret=True),
            CredentialField("app_secret", secret=True),
            CredentialField("verify_token", secret=True),
            _digits_field("phone_number_id", "phone number ID (WhatsApp > API Setup)"),
        ),
        hint_field="access_token",
        probe=_whatsapp_phone_number,
    ),
    Provider(
        name="discord",
        title="Discord application",
        fields=(
            CredentialField("bot_token", secret=True),
            _digits_field("application_id", "application ID (General Information)"),
            CredentialField(
                "public_key",
                secret=False,
                pattern=r"[0-9a-fA-F]{64}",
                shape="must be the application's public key: 64 hexadecimal characters",
            ),
        ),
        hint_field="bot_token",
        probe=_discord_bot,
    ),
)

PROVIDERS: Mapping[str, Provider] = MappingProxyType({p.name: p for p in _REGISTRY})
"""Every provider by name."""


def get_provider(name: str) -> Provider:
    """The provider called ``name``; :class:`UnknownProvider` (naming the known ones) if none."""
    try:
        return PROVIDERS[name]
    except KeyError:
        raise UnknownProvider(name, tuple(PROVIDERS)) from None
