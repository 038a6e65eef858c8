"""Keyed token digests: the format, the key's configuration and its generated file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pickle
from pathlib import Path

import pytest

from control_plane.vault.digests import (
    TokenDigests,
    TokenHashKeyError,
    load_or_create_token_digests,
    parse_token_hash_key,
)
from tenant_gateway.contract import digest_gateway_key

KEY = bytes(range(32))


def test_a_digest_is_hmac_sha256_over_the_sha256_of_the_token() -> None:
    digests = TokenDigests(KEY)
    inner = hashlib.sha256(b"tnt_admin_x").digest()
    assert digests.digest("tnt_admin_x") == hmac.new(KEY, inner, hashlib.sha256).hexdigest()
    assert digests.digest("tnt_admin_x") != hashlib.sha256(b"tnt_admin_x").hexdigest()
    assert TokenDigests(bytes(32)).digest("tnt_admin_x") != digests.digest("tnt_admin_x")


def test_matches_compares_digests() -> None:
    digests = TokenDigests(KEY)
    stored = digests.digest("a")
    assert digests.matches("a", stored)
    assert not digests.matches("b", stored)


def test_a_plain_sha256_digest_is_rekeyed_to_the_same_value_as_the_token() -> None:
    digests = TokenDigests(KEY)
    old = hashlib.sha256(b"tok").hexdigest()
    assert digests.rekey_sha256(old) == digests.digest("tok")
    assert digests.rekey_sha256(old, "tenant-1") == digests.gateway_key_digest("tenant-1", "tok")


def test_gateway_key_digests_use_a_per_tenant_key_the_gateway_can_check() -> None:
    digests = TokenDigests(KEY)
    secret = base64.b64decode(digests.gateway_key_secret_b64("tenant-1"))
    assert len(secret) == 32
    assert secret != digests.gateway_key_secret("tenant-2")
    assert secret != KEY, "the installation key never goes to a gateway"
    assert digest_gateway_key("tgk_a", secret) == digests.gateway_key_digest("tenant-1", "tgk_a")
    assert digests.gateway_key_digest("tenant-2", "tgk_a") != digests.gateway_key_digest(
        "tenant-1", "tgk_a"
    )


def test_the_key_never_shows() -> None:
    digests = TokenDigests(KEY)
    assert KEY.hex() not in repr(digests)
    assert base64.b64encode(KEY).decode() not in repr(digests)
    with pytest.raises(TypeError):
        pickle.dumps(digests)
    with pytest.raises(AttributeError):
        digests._key = bytes(32)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "empty"),
        ("***", "not valid base64"),
        (base64.b64encode(bytes(16)).decode(), "got 16 bytes"),
    ],
)
def test_a_bad_key_names_the_variable(value: str, problem: str) -> None:
    with pytest.raises(TokenHashKeyError) as caught:
        parse_token_hash_key(value)
    assert str(caught.value).startswith("TENANTRY_TOKEN_HASH_KEY: ")
    assert problem in str(caught.value)


def test_url_safe_base64_without_padding_is_accepted() -> None:
    encoded = base64.urlsafe_b64encode(b"\xff" * 32).decode().rstrip("=")
    assert parse_token_hash_key(encoded).digest("x") == TokenDigests(b"\xff" * 32).digest("x")


def test_the_variable_wins_over_the_file(tmp_path: Path) -> None:
    digests, generated = load_or_create_token_digests(
        base64.b64encode(KEY).decode(), tmp_path / "token-hash-key"
    )
    assert not generated
    assert digests.digest("x") == TokenDigests(KEY).digest("x")
    assert not (tmp_path / "token-hash-key").exists()


def test_the_embedded_default_generates_a_private_key_file_once(tmp_path: Path) -> None:
    key_file = tmp_path / "data" / "token-hash-key"
    first, generated = load_or_create_token_digests(None, key_file)
    assert generated
    assert key_file.stat().st_mode & 0o777 == 0o600
    again, generated_again = load_or_create_token_digests(None, key_file)
    assert not generated_again
    assert again.digest("x") == first.digest("x")


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "token-hash-key"
    load_or_create_token_digests(None, key_file)
    os.chmod(key_file, 0o644)
    with pytest.raises(TokenHashKeyError) as caught:
        load_or_create_token_digests(None, key_file)
    assert "chmod 600" in str(caught.value)


def test_a_broken_key_file_says_which_file(tmp_path: Path) -> None:
    key_file = tmp_path / "token-hash-key"
    key_file.write_text("short\n")
    os.chmod(key_file, 0o600)
    with pytest.raises(TokenHashKeyError) as caught:
        load_or_create_token_digests(None, key_file)
    assert str(key_file) in str(caught.value)


def test_an_inbound_key_is_checked_by_its_own_tenants_bundle_digest_only() -> None:
    digests = TokenDigests.generate()
    key_a, key_b = digests.inbound_key("tenant-a"), digests.inbound_key("tenant-b")
    assert key_a != key_b
    assert len(key_a) == 64
    assert digests.inbound_key("tenant-a") == key_a  # derived, so the same every time
    secret_a = digests.gateway_key_secret("tenant-a")
    assert digest_gateway_key(key_a, secret_a) == digests.inbound_key_digest("tenant-a")
    assert digest_gateway_key(key_b, secret_a) != digests.inbound_key_digest("tenant-a")
    assert TokenDigests.generate().inbound_key("tenant-a") != key_a
    assert key_a not in digests.inbound_key_digest("tenant-a")
