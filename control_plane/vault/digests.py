"""Keyed digests of the random tokens we issue (admin tokens, gateway keys, API tokens).

Tokens we make carry 256 bits of randomness, so they need no slow KDF; but a database dump
alone should not even let anyone check a token they found elsewhere. So every stored digest
is an HMAC under a key that lives outside the database: ``TENANTRY_TOKEN_HASH_KEY`` (32
bytes, base64), or on the embedded default a key generated on first start into
``DIR/token-hash-key`` (mode 0600).

Digest, version 1 (hex)::

    HMAC-SHA256(key, SHA-256(token))

Hashing the token first lets a migration turn the plain SHA-256 digests of earlier versions
into keyed ones without knowing any token.

A gateway checks its tenant's keys itself, without calling back, so it gets a *per-tenant*
key, ``HMAC-SHA256(key, "tenantry/gateway-keys/v1\\0" + tenant_id)``, in its bundle: it can
check that one tenant's keys and nothing else, and the installation key never leaves the
control plane. The same digest function (:func:`tenant_gateway.contract.digest_gateway_key`)
is used on both sides.

Channel adapters post a tenant's chat messages to its gateway with the tenant's *inbound
key* (:func:`tenant_gateway.contract.inbound_key`), derived on demand from
``HMAC-SHA256(key, "tenantry/inbound-keys/v1")``, never stored; its bundle carries only the
digest.

Passwords and other guessable secrets never come here: they are hashed with Argon2.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import NoReturn

from control_plane.vault import keyfile
from control_plane.vault.errors import VaultError
from tenant_gateway.contract import digest_gateway_key, inbound_key, inbound_key_digest

TOKEN_HASH_VARIABLE = "TENANTRY_TOKEN_HASH_KEY"  # noqa: S105 (a variable name)
KEY_SIZE = 32
_GATEWAY_LABEL = b"tenantry/gateway-keys/v1\0"
_INBOUND_LABEL = b"tenantry/inbound-keys/v1"


class TokenHashKeyError(VaultError):
    """The token hash key is unusable; the message starts with ``TENANTRY_TOKEN_HASH_KEY: ``."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{TOKEN_HASH_VARIABLE}: {problem}")
        self.problem = problem


class TokenDigests:
    """Makes the keyed digests stored for tokens; the key never shows in repr or errors."""

    __slots__ = ("_key",)
    _key: bytes

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise TokenHashKeyError(f"the key must be {KEY_SIZE} bytes, not {len(key)}")
        object.__setattr__(self, "_key", key)

    @classmethod
    def generate(cls) -> TokenDigests:
        return cls(secrets.token_bytes(KEY_SIZE))

    def digest(self, token: str) -> str:
        """The stored digest of ``token``."""
        return self.rekey_sha256(hashlib.sha256(token.encode("utf-8")).hexdigest())

    def rekey_sha256(self, sha256_hex: str, tenant_id: str | None = None) -> str:
        """The keyed digest for a plain SHA-256 hex digest (migration of older rows): of an
        installation-wide token, or of a gateway key of ``tenant_id``."""
        key = self._key if tenant_id is None else self.gateway_key_secret(tenant_id)
        return hmac.new(key, bytes.fromhex(sha256_hex), hashlib.sha256).hexdigest()

    def matches(self, token: str, stored: str) -> bool:
        """Whether ``token`` has digest ``stored``, compared in constant time."""
        return hmac.compare_digest(self.digest(token), stored)

    def gateway_key_secret(self, tenant_id: str) -> bytes:
        """The per-tenant key under which a gateway's key digests are made."""
        return hmac.new(self._key, _GATEWAY_LABEL + tenant_id.encode(), hashlib.sha256).digest()

    def gateway_key_digest(self, tenant_id: str, value: str) -> str:
        return digest_gateway_key(value, self.gateway_key_secret(tenant_id))

    def gateway_key_secret_b64(self, tenant_id: str) -> str:
        """The per-tenant key as a bundle carries it."""
        return base64.b64encode(self.gateway_key_secret(tenant_id)).decode("ascii")

    def inbound_key(self, tenant_id: str) -> str:
        """The key channel adapters present to ``tenant_id``'s gateway."""
        return inbound_key(self._inbound_secret(), tenant_id)

    def inbound_key_digest(self, tenant_id: str) -> str:
        """The digest of :meth:`inbound_key` that the tenant's bundle carries."""
        return inbound_key_digest(
            self._inbound_secret(), tenant_id, self.gateway_key_secret(tenant_id)
        )

    def webhook_secret(self, purpose: str) -> str:
        """A secret the control plane registers with a webhook (Telegram's ``secret_token``)
        and checks on its calls: derived, never stored, the same on every replica."""
        return hmac.new(
            self._key, b"webhook-secret:" + purpose.encode(), hashlib.sha256
        ).hexdigest()

    def _inbound_secret(self) -> bytes:
        return hmac.new(self._key, _INBOUND_LABEL, hashlib.sha256).digest()

    def to_config(self) -> str:
        return base64.b64encode(self._key).decode("ascii")

    def __repr__(self) -> str:
        return "TokenDigests(<key hidden>)"

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("TokenDigests is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("TokenDigests holds a key and cannot be pickled")


def parse_token_hash_key(text: str) -> TokenDigests:
    """``TENANTRY_TOKEN_HASH_KEY``: 32 bytes in standard or URL-safe base64."""
    encoded = text.strip()
    if not encoded:
        raise TokenHashKeyError("empty: expected 32 bytes in base64")
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise TokenHashKeyError("not valid base64 (expected 32 bytes in base64)") from None
    if len(key) != KEY_SIZE:
        raise TokenHashKeyError(f"expected {KEY_SIZE} bytes in base64, got {len(key)} bytes")
    return TokenDigests(key)


def load_or_create_token_digests(
    env_value: str | None, key_file: Path
) -> tuple[TokenDigests, bool]:
    """The key from the variable, else from ``key_file``, else a new one written there.

    The flag is True when the key was generated just now (the caller warns that production
    must supply it).
    """
    if env_value and env_value.strip():
        return parse_token_hash_key(env_value), False
    text = keyfile.read_private(key_file, TokenHashKeyError)
    if text is not None:
        return _parse_file(text, key_file), False
    digests = TokenDigests.generate()
    if keyfile.create_private(key_file, digests.to_config() + "\n", TokenHashKeyError):
        return digests, True
    text = keyfile.read_private(key_file, TokenHashKeyError)
    if text is None:
        raise TokenHashKeyError(f"not set, and the key file {key_file} vanished being created")
    return _parse_file(text, key_file), False


def _parse_file(text: str, key_file: Path) -> TokenDigests:
    try:
        return parse_token_hash_key(text)
    except TokenHashKeyError as exc:
        raise TokenHashKeyError(
            f"not set, and the key file {key_file} is invalid: {exc.problem}"
        ) from exc
