"""Access tokens as data: the key ring's configuration, rotation by ``kid``, the generated key
file of the embedded default, and the claims a token must carry."""

from __future__ import annotations

import base64
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from control_plane.errors import AuthenticationError, SettingsError
from control_plane.identity.access_tokens import (
    LEEWAY,
    AccessTokens,
    JwtKeyError,
    JwtKeyRing,
    load_or_create_jwt_keys,
    parse_jwt_keys,
)

SEED_A = base64.b64encode(b"a" * 32).decode()
SEED_B = base64.b64encode(b"b" * 32).decode()


class Now:
    def __init__(self) -> None:
        self.at = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "no keys"),
        ("k1", "expected kid:base64key"),
        ("k1:%%%", "not base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "32 bytes"),
        (f"k1:{SEED_A},k1:{SEED_B}", "appears twice"),
        (f"bad kid:{SEED_A}", "bad kid"),
    ],
)
def test_a_bad_key_ring_names_the_variable(value: str, words: str) -> None:
    with pytest.raises(JwtKeyError, match=words) as refused:
        parse_jwt_keys(value)
    assert isinstance(refused.value, SettingsError)
    assert str(refused.value).startswith("TENANTRY_JWT_KEYS: ")
    assert SEED_A not in str(refused.value)


def test_the_first_key_signs_and_every_key_verifies() -> None:
    now = Now()
    old = AccessTokens(parse_jwt_keys(f"old:{SEED_A}"), now=now)
    token = old.issue("user-1", "session-1")
    rotated = AccessTokens(parse_jwt_keys(f"new:{SEED_B},old:{SEED_A}"), now=now)
    assert rotated.verify(token).user_id == "user-1"
    assert jwt.get_unverified_header(rotated.issue("user-1", "session-1"))["kid"] == "new"
    retired = AccessTokens(parse_jwt_keys(f"new:{SEED_B}"), now=now)
    with pytest.raises(AuthenticationError, match="unknown key"):
        retired.verify(token)


def test_a_token_carries_every_claim_and_expires_on_our_clock() -> None:
    now = Now()
    tokens = AccessTokens(parse_jwt_keys(f"k1:{SEED_A}"), ttl=60, now=now)
    token = tokens.issue("user-1", "session-1")
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header == {"alg": "EdDSA", "kid": "k1", "typ": "at+jwt"}
    assert set(claims) == {"iss", "aud", "sub", "sid", "iat", "exp", "jti"}
    assert claims["exp"] - claims["iat"] == 60
    verified = tokens.verify(token)
    assert (verified.user_id, verified.session_id) == ("user-1", "session-1")
    assert tokens.issue("user-1", "session-1") != token, "each token has its own jti"
    now.at += timedelta(seconds=60 + LEEWAY - 1)
    assert tokens.verify(token).user_id == "user-1", "a little clock skew is tolerated"
    now.at += timedelta(seconds=1)
    with pytest.raises(AuthenticationError, match="expired"):
        tokens.verify(token)


def test_a_token_from_another_issuer_is_refused() -> None:
    ring = parse_jwt_keys(f"k1:{SEED_A}")
    tokens = AccessTokens(ring, now=Now())
    claims = jwt.decode(tokens.issue("u", "s"), options={"verify_signature": False})
    foreign = jwt.encode(
        {**claims, "iss": "elsewhere"}, ring.signing_key(), algorithm="EdDSA", headers={"kid": "k1"}
    )
    with pytest.raises(AuthenticationError, match="not for this API"):
        tokens.verify(foreign)
    no_expiry = jwt.encode(
        {k: v for k, v in claims.items() if k != "exp"},
        ring.signing_key(),
        algorithm="EdDSA",
        headers={"kid": "k1"},
    )
    with pytest.raises(AuthenticationError, match="'exp'"):
        tokens.verify(no_expiry)


def test_the_embedded_default_generates_one_private_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "data" / "jwt-keys"
    ring, generated = load_or_create_jwt_keys(None, key_file)
    assert generated
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again, generated_again = load_or_create_jwt_keys(None, key_file)
    assert not generated_again
    assert again.active_kid == ring.active_kid
    token = AccessTokens(ring).issue("u", "s")
    assert AccessTokens(again).verify(token).user_id == "u"
    assert repr(ring).count(ring.active_kid) == 2, "repr shows kids, never key material"


def test_the_variable_wins_and_a_loose_key_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "jwt-keys"
    ring, generated = load_or_create_jwt_keys(f"env:{SEED_A}", key_file)
    assert (ring.active_kid, generated) == ("env", False)
    assert not key_file.exists()
    key_file.write_text(f"k1:{SEED_A}\n")
    key_file.chmod(0o644)
    with pytest.raises(JwtKeyError, match="chmod 600"):
        load_or_create_jwt_keys(None, key_file)


def test_a_generated_ring_round_trips_through_its_configuration() -> None:
    ring = JwtKeyRing.generate()
    assert parse_jwt_keys(ring.to_config()).active_kid == ring.active_kid
