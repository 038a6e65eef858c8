"""The provider registry without the network: field checks and normalisation, public fields,
masked hints, unknown providers and the validation base URLs from the environment."""

from __future__ import annotations

import pytest

from control_plane.vault.providers import (
    PROVIDERS,
    CredentialField,
    InvalidCredentialFields,
    Provider,
    ProviderBases,
    ProviderError,
    UnknownProvider,
    check_fields,
    get_provider,
    hint,
    provider_bases_from_env,
    public_fields,
)

KEY = "sk-proj-Zq81vXw3Lm0pN4rT6yU2"
TOKEN = "7012345678:AAHd3fQ9xKz1LmN2oP3qR4sT5uV6wX7yZ8a"


def invalid(provider: str, values: dict[str, object]) -> InvalidCredentialFields:
    with pytest.raises(InvalidCredentialFields) as caught:
        check_fields(get_provider(provider), values)
    return caught.value


# -- the registry -----------------------------------------------------------------------------


def test_the_registry_has_the_providers_by_name() -> None:
    assert {"openai", "anthropic", "openai_compatible", "telegram_bot"} <= set(PROVIDERS)
    for name, provider in PROVIDERS.items():
        assert provider.name == name
        assert get_provider(name) is provider


def test_an_unknown_provider_names_itself_and_the_known_ones() -> None:
    with pytest.raises(UnknownProvider) as caught:
        get_provider("gemini")
    message = str(caught.value)
    assert "'gemini'" in message
    for name in ("anthropic", "openai", "openai_compatible", "telegram_bot"):
        assert name in message
    assert caught.value.known == tuple(sorted(PROVIDERS))
    assert isinstance(caught.value, ProviderError)


def test_a_provider_hint_field_must_be_a_secret_field() -> None:
    with pytest.raises(ValueError, match="hint_field"):
        Provider(
            name="example",
            title="Example",
            fields=(CredentialField("base_url", secret=False, kind="url"),),
            hint_field="base_url",
            probe=get_provider("openai").probe,
        )


def test_a_provider_repr_is_plain() -> None:
    text = repr(get_provider("openai_compatible"))
    assert "openai_compatible" in text
    assert "probe" not in text


# -- field checks -----------------------------------------------------------------------------


def test_fields_are_stripped_and_urls_lose_their_trailing_slash() -> None:
    checked = check_fields(
        get_provider("openai_compatible"),
        {"api_key": f"  {KEY}\n", "base_url": " https://llm.example.com/v1/ "},
    )
    assert checked == {"api_key": KEY, "base_url": "https://llm.example.com/v1"}


def test_a_missing_field_is_named() -> None:
    error = invalid("openai_compatible", {"api_key": KEY})
    assert error.field == "base_url"
    assert "is required" in str(error)
    assert KEY not in str(error)


def test_an_unknown_field_is_named_with_the_known_ones() -> None:
    error = invalid("openai", {"api_key": KEY, "organization": "org-1"})
    assert error.field == "organization"
    assert "api_key" in str(error)
    assert "org-1" not in str(error)
    assert KEY not in str(error)


@pytest.mark.parametrize("empty", ["", "   ", "\t\n"])
def test_an_empty_field_is_refused(empty: str) -> None:
    error = invalid("anthropic", {"api_key": empty})
    assert error.field == "api_key"
    assert "must not be empty" in str(error)


@pytest.mark.parametrize("value", [123, None, ["sk-x"], {"k": "v"}])
def test_a_value_that_is_not_a_string_is_refused(value: object) -> None:
    error = invalid("openai", {"api_key": value})
    assert error.field == "api_key"
    assert "is required" in str(error) or "must be a string" in str(error)


@pytest.mark.parametrize("secret", ["sk-has space inside-0000", "sk-ünïcode-000000", "sk-\x00nul"])
def test_a_secret_must_be_printable_ascii_and_is_not_repeated(secret: str) -> None:
    error = invalid("openai", {"api_key": secret})
    assert "printable ASCII" in str(error)
    assert secret not in str(error)
    assert secret.strip()[:6] not in str(error)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://llm.example.com/v1", "http:// or https://"),
        ("llm.example.com/v1", "http:// or https://"),
        ("https:///v1", "with a host"),
        ("https://user:pw@llm.example.com/v1", "user name or password"),
        ("https://llm.example.com/v1?api-version=1", "query"),
        ("https://llm.example.com:99999/v1", "not a valid URL"),
        ("https://llm.example.com/v 1", "without spaces"),
    ],
)
def test_a_bad_url_is_refused_naming_the_field(url: str, problem: str) -> None:
    error = invalid("openai_compatible", {"api_key": KEY, "base_url": url})
    assert error.field == "base_url"
    assert problem in str(error)
    assert "pw@" not in str(error)


@pytest.mark.parametrize(
    "token",
    [
        "AAHd3fQ9xKz1LmN2oP3qR4sT5uV6wX7yZ8a",  # no bot id
        "bot7012345678:AAHd3fQ9xKz1LmN2oP3qR4sT5uV6wX7yZ8a",  # not digits first
        "7012345678:AAHd3fQ9xKz1",  # too short after the colon
        "7012345678:AAHd3fQ9xKz1LmN2oP3q/../sT5uV6wX7yZ8a",  # path characters
    ],
)
def test_a_token_not_shaped_like_a_telegram_token_is_refused(token: str) -> None:
    error = invalid("telegram_bot", {"token": token})
    assert error.field == "token"
    assert "digits, a colon" in str(error)
    assert token not in str(error)


def test_a_well_shaped_telegram_token_passes() -> None:
    assert check_fields(get_provider("telegram_bot"), {"token": f" {TOKEN} "}) == {"token": TOKEN}


# -- what may be shown ------------------------------------------------------------------------


def test_public_fields_leave_out_the_secrets() -> None:
    values = {"api_key": KEY, "base_url": "https://llm.example.com/v1"}
    assert public_fields(get_provider("openai_compatible"), values) == {
        "base_url": "https://llm.example.com/v1"
    }
    assert public_fields(get_provider("openai"), {"api_key": KEY}) == {}
    assert public_fields(get_provider("telegram_bot"), {"token": TOKEN}) == {}


def test_the_hint_is_the_last_four_characters_of_the_secret() -> None:
    assert hint(get_provider("openai"), {"api_key": KEY}) == "…6yU2"
    assert hint(get_provider("telegram_bot"), {"token": TOKEN}) == "…yZ8a"
    values = {"api_key": KEY, "base_url": "https://llm.example.com/v1"}
    assert hint(get_provider("openai_compatible"), values) == "…6yU2"


@pytest.mark.parametrize("short", ["a", "sk-1234", "sk-12345678"])
def test_a_short_secret_gives_no_characters_away(short: str) -> None:
    assert len(short) < 12
    assert hint(get_provider("anthropic"), {"api_key": short}) == "…"


def test_a_twelve_character_secret_shows_its_last_four() -> None:
    assert hint(get_provider("anthropic"), {"api_key": "sk-abcd-wxyz"}) == "…wxyz"


# -- base URLs ---------------------------------------------------------------------------------


def test_bases_default_to_the_real_services() -> None:
    bases = provider_bases_from_env({})
    assert bases == ProviderBases()
    assert bases.openai == "https://api.openai.com/v1"
    assert bases.anthropic == "https://api.anthropic.com"
    assert bases.telegram == "https://api.telegram.org"
    assert provider_bases_from_env({"TENANTRY_OPENAI_API_BASE": "  "}) == ProviderBases()


def test_bases_come_from_the_environment() -> None:
    bases = provider_bases_from_env(
        {
            "TENANTRY_OPENAI_API_BASE": "http://127.0.0.1:9000/v1/",
            "TENANTRY_ANTHROPIC_API_BASE": "http://127.0.0.1:9001",
            "TENANTRY_TELEGRAM_API_BASE": " http://127.0.0.1:8081 ",
            "UNRELATED": "x",
        }
    )
    assert bases == ProviderBases(
        openai="http://127.0.0.1:9000/v1",
        anthropic="http://127.0.0.1:9001",
        telegram="http://127.0.0.1:8081",
    )


@pytest.mark.parametrize(
    "variable",
    ["TENANTRY_OPENAI_API_BASE", "TENANTRY_ANTHROPIC_API_BASE", "TENANTRY_TELEGRAM_API_BASE"],
)
@pytest.mark.parametrize("bad", ["api.openai.com", "file:///etc/passwd", "http://"])
def test_a_bad_base_url_names_its_variable(variable: str, bad: str) -> None:
    with pytest.raises(ValueError, match=f"^{variable}: ") as caught:
        provider_bases_from_env({variable: bad})
    assert not isinstance(caught.value, ProviderError)
