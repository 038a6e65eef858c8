"""Short-lived access tokens: JWTs signed with Ed25519 (``EdDSA``) keys that carry a ``kid``.

The signing keys form a ring, like the KEK ring: ``TENANTRY_JWT_KEYS`` holds comma-separated
``kid:base64-of-32-byte-seed`` entries, the first one signs and all of them verify, so keys
rotate by putting a new one first and dropping the old one after the longest token lifetime
(15 minutes by default). The embedded default generates one into ``DIR/jwt-keys`` (0600).

Verification pins the algorithm (``alg: none`` and HMAC-with-the-public-key confusion are
refused), requires every claim, checks issuer and audience, and looks the key up by ``kid``
(an unknown ``kid`` is refused). A token names its login session (``sid``); the
authenticator refuses it once that session is revoked.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from control_plane.db.values import utcnow
from control_plane.errors import AuthenticationError, SettingsError
from control_plane.vault import keyfile

JWT_KEYS_VARIABLE = "TENANTRY_JWT_KEYS"
ALGORITHM = "EdDSA"
ISSUER = "tenantry"
AUDIENCE = "tenantry-api"
TOKEN_TYPE = "at+jwt"  # noqa: S105 (a media type, not a secret)
REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "iat", "exp", "jti"]
LEEWAY = 5
"""Seconds an access token is still accepted after ``exp``, for clock skew between replicas."""
_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class JwtKeyError(SettingsError):
    """The JWT key ring is unusable; the message starts with ``TENANTRY_JWT_KEYS: ``."""

    def __init__(self, problem: str) -> None:
        super().__init__(JWT_KEYS_VARIABLE, problem)
        self.problem = problem


class JwtKeyRing:
    """Ed25519 signing keys by ``kid``; the first signs."""

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        entries = list(keys)
        if not entries:
            raise JwtKeyError("no keys")
        self._seeds: dict[str, bytes] = {}
        for kid, seed in entries:
            if not _KID.fullmatch(kid):
                raise JwtKeyError(f"bad kid {kid!r}: 1-64 characters from A-Z a-z 0-9 . _ -")
            if kid in self._seeds:
                raise JwtKeyError(f"kid {kid!r} appears twice")
            if len(seed) != 32:
                raise JwtKeyError(f"key {kid!r} must be 32 bytes, not {len(seed)}")
            self._seeds[kid] = seed
        self.active_kid = entries[0][0]
        self._private = {k: Ed25519PrivateKey.from_private_bytes(s) for k, s in self._seeds.items()}

    @classmethod
    def generate(cls) -> JwtKeyRing:
        return cls([(f"k{secrets.token_hex(3)}", secrets.token_bytes(32))])

    def signing_key(self) -> Ed25519PrivateKey:
        return self._private[self.active_kid]

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        private = self._private.get(kid)
        return private.public_key() if private is not None else None

    def to_config(self) -> str:
        return ",".join(f"{k}:{base64.b64encode(s).decode()}" for k, s in self._seeds.items())

    def __repr__(self) -> str:
        return f"JwtKeyRing(kids={list(self._seeds)}, active={self.active_kid!r})"


def parse_jwt_keys(text: str) -> JwtKeyRing:
    entries = []
    for position, entry in enumerate((e.strip() for e in text.split(",")), 1):
        if not entry:
            continue
        kid, sep, encoded = entry.partition(":")
        if not sep:
            raise JwtKeyError(f"entry {position}: expected kid:base64key")
        try:
            seed = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise JwtKeyError(f"entry {position} ({kid}): key is not base64") from None
        entries.append((kid, seed))
    return JwtKeyRing(entries)


def load_or_create_jwt_keys(env_value: str | None, key_file: Path) -> tuple[JwtKeyRing, bool]:
    """The ring from the variable, else from ``key_file``, else a new one written there."""
    if env_value and env_value.strip():
        return parse_jwt_keys(env_value), False
    text = keyfile.read_private(key_file, JwtKeyError)
    if text is not None:
        return parse_jwt_keys(text), False
    ring = JwtKeyRing.generate()
    if keyfile.create_private(key_file, ring.to_config() + "\n", JwtKeyError):
        return ring, True
    text = keyfile.read_private(key_file, JwtKeyError)
    if text is None:
        raise JwtKeyError(f"not set, and the key file {key_file} vanished being created")
    return parse_jwt_keys(text), False


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    expires_at: datetime


class AccessTokens:
    def __init__(
        self, ring: JwtKeyRing, ttl: float = 900.0, now: Callable[[], datetime] = utcnow
    ) -> None:
        self.ring = ring
        self.ttl = ttl
        self.now = now

    def issue(self, user_id: str, session_id: str) -> str:
        now = self.now()
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "sid": session_id,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self.ttl)).timestamp()),
            "jti": secrets.token_hex(8),
        }
        headers = {"kid": self.ring.active_kid, "typ": TOKEN_TYPE}
        return jwt.encode(payload, self.ring.signing_key(), algorithm=ALGORITHM, headers=headers)

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid token, or AuthenticationError saying what is wrong."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise AuthenticationError("the access token is malformed") from None
        if header.get("alg") != ALGORITHM:
            raise AuthenticationError(
                f"the access token's algorithm {header.get('alg')!r} is not accepted"
            )
        kid = header.get("kid")
        key = self.ring.public_key(kid) if isinstance(kid, str) else None
        if key is None:
            raise AuthenticationError("the access token was signed with an unknown key (kid)")
        try:
            # Expiry is checked below against our own clock (injectable, so tests agree).
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": REQUIRED_CLAIMS, "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidSignatureError:
            raise AuthenticationError("the access token's signature is not valid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"the access token lacks the {exc.claim!r} claim") from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            raise AuthenticationError("the access token is not for this API") from None
        except jwt.PyJWTError:
            raise AuthenticationError("the access token is not valid") from None
        expires = datetime.fromtimestamp(int(claims["exp"]), tz=self.now().tzinfo)
        if self.now() >= expires + timedelta(seconds=LEEWAY):
            raise AuthenticationError("the access token has expired; refresh it")
        return AccessClaims(str(claims["sub"]), str(claims["sid"]), expires)
