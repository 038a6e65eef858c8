"""Who may call the gateway: the tenant's key digests, kept current from ``bundle.json``.

The control plane rewrites the bundle (atomically, by rename) when a key is created or
revoked. :class:`BundleSource` notices the change by polling ``os.stat`` (inode, size and
mtime) and swaps in the new key set, so the change takes effect within about a second and
without a restart. A bundle that cannot be read keeps the previous one in force.

Plaintext keys exist here only for the time of one check; they are never stored or logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec

from tenant_gateway.contract import KEY_DIGEST_KEY_SIZE, GatewayBundle, digest_gateway_key
from tenant_gateway.settings import GatewayError

log = logging.getLogger(__name__)


class BundleError(GatewayError):
    """``bundle.json`` is missing or is not a valid bundle."""

    problem = "bad-bundle"
    title = "Bad gateway bundle"
    code = "bad_bundle"


class Unauthorized(GatewayError):
    """The request carries no gateway key, or one the tenant does not have."""

    status_code = 401
    problem = "unauthorized"
    title = "Unauthorized"
    error_type = "invalid_request_error"
    code = "invalid_api_key"


def parse_bundle(content: bytes) -> GatewayBundle:
    """Decode and validate a bundle; :class:`BundleError` says what is wrong."""
    try:
        bundle = msgspec.json.decode(content, type=GatewayBundle)
    except msgspec.ValidationError as exc:
        raise BundleError(f"invalid bundle: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BundleError(f"bundle is not valid JSON: {exc}") from None
    try:
        key = base64.b64decode(bundle.key_digest_key, validate=True)
    except (binascii.Error, ValueError):
        raise BundleError("invalid bundle: key_digest_key is not base64") from None
    if len(key) != KEY_DIGEST_KEY_SIZE:
        raise BundleError(f"invalid bundle: key_digest_key must be {KEY_DIGEST_KEY_SIZE} bytes")
    return bundle


def read_bundle(path: Path) -> GatewayBundle:
    """Read and validate the bundle at ``path``."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_bundle(content)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class KeyRing:
    """The set of key digests that are valid right now."""

    __slots__ = ("_accepted", "_digests", "_key")

    def __init__(self, digests: frozenset[str], key: bytes) -> None:
        self._digests = digests
        self._key = key
        self._accepted: set[str] = set()
        """Keys that matched a digest of this ring (a new bundle makes a new ring, so a
        revoked key is forgotten with it); refused ones are never kept."""

    @classmethod
    def of(cls, bundle: GatewayBundle) -> KeyRing:
        key = base64.b64decode(bundle.key_digest_key)
        return cls(frozenset(k.digest.strip().lower() for k in bundle.keys), key)

    def __len__(self) -> int:
        return len(self._digests)

    def allows(self, key: str) -> bool:
        # The set holds digests of 256-bit random keys, so looking one up leaks nothing useful.
        if key in self._accepted:
            return True
        if digest_gateway_key(key, self._key) not in self._digests:
            return False
        if len(self._accepted) < 64:
            self._accepted.add(key)
        return True


_Signature = tuple[int, int, int, int]


def _signature(path: Path) -> _Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


class BundleSource:
    """The current bundle and key ring of one tenant, re-read when ``bundle.json`` changes."""

    def __init__(self, path: Path, initial: GatewayBundle, *, interval: float = 0.5) -> None:
        self.path = path
        self.interval = interval
        self._bundle = initial
        self._keys = KeyRing.of(initial)
        self._signature = _signature(path)
        self.reloads = 0
        self.listeners: list[Callable[[GatewayBundle], Awaitable[None]]] = []
        """Called with each new bundle the watcher puts in force."""

    @property
    def bundle(self) -> GatewayBundle:
        return self._bundle

    @property
    def tenant_id(self) -> str:
        return self._bundle.tenant_id

    @property
    def keys(self) -> KeyRing:
        return self._keys

    def authenticate(self, authorization: str | None) -> None:
        """Raise :class:`Unauthorized` unless the header carries a key of this tenant."""
        token = bearer_token(authorization)
        if token is None:
            raise Unauthorized("missing gateway key: send 'Authorization: Bearer <key>'")
        if not self._keys.allows(token):
            raise Unauthorized("invalid gateway key")

    def refresh(self) -> bool:
        """Re-read the bundle if the file changed; True if a new bundle is now in force."""
        signature = _signature(self.path)
        if signature is None or signature == self._signature:
            return False
        self._signature = signature
        try:
            bundle = read_bundle(self.path)
        except BundleError as exc:
            log.warning("keeping the previous bundle: %s", exc.detail)
            return False
        if bundle.tenant_id != self._bundle.tenant_id:
            log.warning(
                "keeping the previous bundle: the new one names tenant %s, this gateway serves %s",
                bundle.tenant_id,
                self._bundle.tenant_id,
            )
            return False
        self._bundle = bundle
        self._keys = KeyRing.of(bundle)
        self.reloads += 1
        log.info("bundle reloaded: %d gateway keys", len(self._keys))
        return True

    async def watch(self) -> None:
        """Poll for changes until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                if self.refresh():
                    for listener in self.listeners:
                        await listener(self._bundle)
            except Exception:  # never let the watcher die: keys must keep updating
                log.exception("checking %s failed", self.path)
