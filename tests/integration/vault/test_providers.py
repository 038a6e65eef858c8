"""Credential validation against real HTTP servers speaking each provider's wire format
(:mod:`tests.doubles.provider_apis`): accepted, refused, down, failing, slow — and never a
secret in what the errors or the logs say."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from control_plane.vault.providers import (
    ANTHROPIC_VERSION,
    CredentialRefused,
    InvalidCredentialFields,
    ProviderBases,
    ProviderError,
    ProviderUnreachable,
    get_provider,
)
from tests.doubles.provider_apis import ProviderAPIs, masked, provider_apis

GOOD_KEY = "sk-test-good-4kQ9wZ2rT7yU1iO3pA5s"
BAD_KEY = "sk-test-bad-8mN6bV4cX2zL0kJ9hG7f"
GOOD_TOKEN = "7012345678:AAHd3fQ9xKz1LmN2oP3qR4sT5uV6wX7yZ8a"
BAD_TOKEN = "7012345678:AAEwrongwrongWRONGwrong0123456789_-x"

PROVIDERS = ["openai", "anthropic", "openai_compatible", "telegram_bot"]


@dataclass(frozen=True)
class Case:
    provider: str
    values: dict[str, str]
    secret: str


def case(provider: str, apis_base: str, *, good: bool) -> Case:
    """A credential for ``provider``; the OpenAI-compatible one's base is ``apis_base/v1``."""
    if provider == "telegram_bot":
        token = GOOD_TOKEN if good else BAD_TOKEN
        return Case(provider, {"token": token}, token)
    key = GOOD_KEY if good else BAD_KEY
    values = {"api_key": key}
    if provider == "openai_compatible":
        values["base_url"] = f"{apis_base}/v1"
    return Case(provider, values, key)


def closed_base() -> str:
    """An http://127.0.0.1 URL on which nothing listens (a port bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def everything_said(exc: BaseException) -> str:
    """The message, repr and full formatted traceback of ``exc`` and of the exceptions it
    chains to, and the URL of any httpx request among them: all a log of it could show."""
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), "".join(traceback.format_exception(seen))]
        if isinstance(seen, httpx.RequestError):
            parts.append(str(seen.request.url))
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def assert_secret_kept(exc: BaseException, secret: str) -> None:
    said = everything_said(exc)
    assert secret not in said
    # Nor a recognisable piece of it (OpenAI echoes keys masked: first 8 and last 4 chars).
    assert secret[-12:] not in said
    assert masked(secret) not in said


@pytest.fixture
def apis() -> Iterator[ProviderAPIs]:
    with provider_apis(valid_keys=[GOOD_KEY], valid_tokens=[GOOD_TOKEN]) as served:
        yield served


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0), trust_env=False) as http:
        yield http


# -- accepted ---------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_valid_credential_validates(
    provider: str, apis: ProviderAPIs, client: httpx.AsyncClient
) -> None:
    good = case(provider, apis.base, good=True)
    await get_provider(provider).validate(good.values, client, apis.bases)
    assert len(apis.seen()) == 1


async def test_openai_is_asked_for_its_models_with_a_bearer_key(
    apis: ProviderAPIs, client: httpx.AsyncClient
) -> None:
    await get_provider("openai").validate({"api_key": GOOD_KEY}, client, apis.bases)
    [request] = apis.seen("openai")
    assert (request.method, request.path) == ("GET", "/v1/models")
    assert request.headers["authorization"] == f"Bearer {GOOD_KEY}"


async def test_anthropic_is_asked_with_x_api_key_and_its_version_header(
    apis: ProviderAPIs, client: httpx.AsyncClient
) -> None:
    await get_provider("anthropic").validate({"api_key": GOOD_KEY}, client, apis.bases)
    [request] = apis.seen("anthropic")
    assert (request.method, request.path) == ("GET", "/v1/models")
    assert request.headers["x-api-key"] == GOOD_KEY
    assert request.headers["anthropic-version"] == ANTHROPIC_VERSION == "2023-06-01"
    assert "authorization" not in request.headers


async def test_openai_compatible_asks_the_given_base(
    apis: ProviderAPIs, client: httpx.AsyncClient
) -> None:
    elsewhere = ProviderBases(openai=closed_base())  # must not be used
    values = {"api_key": f"  {GOOD_KEY} ", "base_url": f"{apis.base}/v1/"}
    await get_provider("openai_compatible").validate(values, client, elsewhere)
    [request] = apis.seen("openai")
    assert request.path == "/v1/models"
    assert request.headers["authorization"] == f"Bearer {GOOD_KEY}"


async def test_telegram_is_asked_get_me_with_the_token_in_the_path(
    apis: ProviderAPIs, client: httpx.AsyncClient
) -> None:
    await get_provider("telegram_bot").validate({"token": GOOD_TOKEN}, client, apis.bases)
    [request] = apis.seen("telegram")
    assert (request.method, request.path) == ("GET", f"/bot{GOOD_TOKEN}/getMe")


# -- refused ----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_wrong_credential_is_refused_without_repeating_it(
    provider: str, apis: ProviderAPIs, client: httpx.AsyncClient
) -> None:
    bad = case(provider, apis.base, good=False)
    with pytest.raises(CredentialRefused) as refused:
        await get_provider(provider).validate(bad.values, client, apis.bases)
    assert refused.value.status == 401
    assert refused.value.provider == provider
    assert "HTTP 401" in str(refused.value)
    assert_secret_kept(refused.value, bad.secret)


async def test_openai_refusal_quotes_its_message_but_not_the_masked_key(
    apis: ProviderAPIs, client: httpx.AsyncClient
) -> None:
    with pytest.raises(CredentialRefused) as refused:
        await get_provider("openai").validate({"api_key": BAD_KEY}, client, apis.bases)
    message = refused.value.provider_message or ""
    assert message.startswith("Incorrect API key provided: …")
    assert "You can find your API key" in message
    assert BAD_KEY[:8] not in str(refused.value)
    assert BAD_KEY[-4:] not in str(refused.value)


async def test_anthropic_and_telegram_refusals_quote_their_messages(
    apis: ProviderAPIs, client: httpx.AsyncClient
) -> None:
    with pytest.raises(CredentialRefused) as anthropic:
        await get_provider("anthropic").validate({"api_key": BAD_KEY}, client, apis.bases)
    assert anthropic.value.provider_message == "invalid x-api-key"
    with pytest.raises(CredentialRefused) as telegram:
        await get_provider("telegram_bot").validate({"token": BAD_TOKEN}, client, apis.bases)
    assert telegram.value.provider_message == "Unauthorized"


async def test_telegram_404_for_a_token_it_cannot_parse_is_a_refusal(
    apis: ProviderAPIs, client: httpx.AsyncClient
) -> None:
    # The Bot API answers 404 rather than 401 to tokens it cannot parse; play that.
    apis.override = (
        404,
        {"content-type": "application/json"},
        b'{"ok":false,"error_code":404,"description":"Not Found"}',
    )
    with pytest.raises(CredentialRefused) as refused:
        await get_provider("telegram_bot").validate({"token": GOOD_TOKEN}, client, apis.bases)
    assert refused.value.status == 404
    assert_secret_kept(refused.value, GOOD_TOKEN)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_another_4xx_is_a_refusal_with_its_status(
    provider: str, apis: ProviderAPIs, client: httpx.AsyncClient
) -> None:
    apis.error_status = 403
    good = case(provider, apis.base, good=True)
    with pytest.raises(CredentialRefused) as refused:
        await get_provider(provider).validate(good.values, client, apis.bases)
    assert refused.value.status == 403
    assert "HTTP 403" in str(refused.value)
    assert refused.value.provider_message == "stub error 403"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rate_limited_is_no_verdict_so_a_good_key_is_not_called_refused(
    provider: str, apis: ProviderAPIs, client: httpx.AsyncClient
) -> None:
    apis.error_status = 429
    good = case(provider, apis.base, good=True)
    with pytest.raises(ProviderUnreachable) as unchecked:
        await get_provider(provider).validate(good.values, client, apis.bases)
    assert unchecked.value.status == 429
    assert "rate-limited" in str(unchecked.value)
    assert "without ?validate=true" in str(unchecked.value)


async def test_a_wrong_openai_compatible_base_path_is_a_404_refusal_pointing_at_base_url(
    apis: ProviderAPIs, client: httpx.AsyncClient
) -> None:
    values = {"api_key": GOOD_KEY, "base_url": apis.base}  # without /v1
    with pytest.raises(CredentialRefused) as refused:
        await get_provider("openai_compatible").validate(values, client, apis.bases)
    assert refused.value.status == 404
    assert "base_url" in str(refused.value)


async def test_a_malformed_telegram_token_is_refused_before_any_call(
    apis: ProviderAPIs, client: httpx.AsyncClient
) -> None:
    with pytest.raises(InvalidCredentialFields) as invalid:
        await get_provider("telegram_bot").validate(
            {"token": "7012345678:short/../../x"}, client, apis.bases
        )
    assert invalid.value.field == "token"
    assert "short" not in str(invalid.value)
    assert apis.seen() == []


# -- no verdict -------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_provider_that_is_down_is_unreachable_and_the_secret_stays_out(
    provider: str, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    down = closed_base()
    bases = ProviderBases(openai=f"{down}/v1", anthropic=down, telegram=down)
    bad = case(provider, down, good=True)
    with pytest.raises(ProviderUnreachable) as unreachable:
        await get_provider(provider).validate(bad.values, client, bases)
    assert unreachable.value.base_url.startswith(down)
    assert down in str(unreachable.value)
    assert "ConnectError" in unreachable.value.reason
    assert_secret_kept(unreachable.value, bad.secret)
    assert bad.secret not in caplog.text


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_failing_provider_is_unreachable(
    provider: str, apis: ProviderAPIs, client: httpx.AsyncClient
) -> None:
    apis.error_status = 503
    good = case(provider, apis.base, good=True)
    with pytest.raises(ProviderUnreachable) as unreachable:
        await get_provider(provider).validate(good.values, client, apis.bases)
    assert unreachable.value.status == 503
    assert "answered HTTP 503" in str(unreachable.value)
    assert_secret_kept(unreachable.value, good.secret)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_slow_provider_times_out_as_unreachable(provider: str, apis: ProviderAPIs) -> None:
    apis.delay = 5.0
    good = case(provider, apis.base, good=True)
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.2)) as impatient:
        with pytest.raises(ProviderUnreachable) as unreachable:
            await get_provider(provider).validate(good.values, impatient, apis.bases)
    assert "timed out after 0.2s" in str(unreachable.value)
    assert_secret_kept(unreachable.value, good.secret)


async def test_a_redirect_is_not_followed(apis: ProviderAPIs) -> None:
    apis.override = (307, {"location": f"{apis.base}/elsewhere"}, b"")
    async with httpx.AsyncClient(follow_redirects=True) as following:
        with pytest.raises(ProviderUnreachable) as unreachable:
            await get_provider("anthropic").validate({"api_key": GOOD_KEY}, following, apis.bases)
    assert "redirect" in str(unreachable.value)
    assert [r.path for r in apis.seen()] == ["/v1/models"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_answer_that_is_not_the_providers_is_unreachable(
    provider: str, apis: ProviderAPIs, client: httpx.AsyncClient
) -> None:
    apis.override = (200, {"content-type": "text/html"}, b"<html>a login page</html>")
    good = case(provider, apis.base, good=True)
    with pytest.raises(ProviderUnreachable) as unreachable:
        await get_provider(provider).validate(good.values, client, apis.bases)
    assert "answered HTTP 200 but not with" in str(unreachable.value)


async def test_httpx_request_log_does_not_show_the_telegram_token(
    apis: ProviderAPIs, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    await get_provider("telegram_bot").validate({"token": GOOD_TOKEN}, client, apis.bases)
    with pytest.raises(ProviderError):
        await get_provider("telegram_bot").validate({"token": BAD_TOKEN}, client, apis.bases)
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert len(lines) == 2
    assert all("/bot…/getMe" in line for line in lines), lines
    assert GOOD_TOKEN not in caplog.text
    assert BAD_TOKEN not in caplog.text
