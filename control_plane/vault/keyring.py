"""The key-encryption key (KEK) ring, and wrapping of tenants' data keys (DEKs) under it.

Envelope encryption: each tenant's credentials are sealed under the tenant's random DEK
(:mod:`tenant_gateway.sealed`); the DEK is stored only wrapped by a KEK from this ring. The
ring comes from configuration (``TENANTRY_KEK``) or, on the embedded default, from a key file
generated on first start. Rotating the KEK means putting a new key first in the ring and
rewrapping every DEK; old keys stay in the ring until nothing is wrapped by them.

``TENANTRY_KEK`` syntax: comma-separated ``id:base64key`` entries, the first one active::

    TENANTRY_KEK="k2:<44 base64 chars>,k1:<44 base64 chars>"

Keys are 32 bytes, in standard or URL-safe base64 (padding optional); ids match
``[A-Za-z0-9._-]{1,64}`` and are unique.

Wrapped-DEK byte format, version 1 (AES-256-GCM under the KEK named in it):

===================  ======  ============================================================
field                bytes   value
===================  ======  ============================================================
magic                3       ``b"TWK"`` (Tenantry Wrapped Key)
format version       1       ``0x01``
kek id length        1       L, 1..64
kek id               L       ASCII id of the KEK that wrapped the DEK
nonce                12      random (``os.urandom``)
ciphertext ‖ tag     48      AES-256-GCM of the 32-byte DEK, 16-byte tag last
===================  ======  ============================================================

The associated data binds the wrapped DEK to its tenant and DEK version::

    header (magic .. kek id) + b"tenantry/dek/v1\\0" + tenant_id + b"\\0" + str(dek_version)

Key bytes never appear in ``repr()``, ``str()`` or any error message.
"""

from __future__ import annotations

import base64
import datetime
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple, NoReturn, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from control_plane.vault import keyfile
from control_plane.vault.errors import (
    KeyRingError,
    UnknownKek,
    WrappedKeyBroken,
    WrappedKeyFormatError,
)

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
MAGIC = b"TWK"
FORMAT_VERSION = 1
_KEK_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ID_RULE = "ids are 1-64 characters from A-Z a-z 0-9 . _ -"
_SYNTAX = "expected comma-separated id:base64key entries, the first one active"
_CONTEXT_LABEL = b"tenantry/dek/v1\0"
_WRAPPED_SIZE_AFTER_ID = NONCE_SIZE + KEY_SIZE + TAG_SIZE


def new_dek() -> bytes:
    """A fresh random 256-bit data key."""
    return os.urandom(KEY_SIZE)


class KekRing:
    """An immutable ring of 256-bit KEKs by id; the first is active and wraps new DEKs.

    The other keys only unwrap DEKs that were wrapped before a rotation.
    """

    __slots__ = ("_active_id", "_keys")
    _active_id: str
    _keys: Mapping[str, bytes]

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        """A ring of ``(id, key)`` pairs; the first one is the active key."""
        checked = _checked_keys(keys)
        object.__setattr__(self, "_keys", MappingProxyType(dict(checked)))
        object.__setattr__(self, "_active_id", checked[0][0])

    @classmethod
    def generate(cls, kek_id: str | None = None) -> Self:
        """A ring of one fresh random key, with ``kek_id`` or an id like ``k20260131a3f9``."""
        return cls([(_fresh_id(()) if kek_id is None else kek_id, os.urandom(KEY_SIZE))])

    @property
    def active_id(self) -> str:
        return self._active_id

    @property
    def ids(self) -> tuple[str, ...]:
        """Every key id, the active one first."""
        return tuple(self._keys)

    def with_new_active(self, kek_id: str | None = None) -> KekRing:
        """This ring plus a fresh random key, made active; the old keys still unwrap."""
        new_id = _fresh_id(self.ids) if kek_id is None else kek_id
        if new_id in self._keys:
            raise KeyRingError(f"the ring already has a key with id {new_id!r}")
        return KekRing([(new_id, os.urandom(KEY_SIZE)), *self._keys.items()])

    def to_config(self) -> str:
        """The ring in ``TENANTRY_KEK`` syntax (holds the keys: write it only to a 0600 file)."""
        entries = (f"{kek_id}:{_encode_key(key)}" for kek_id, key in self._keys.items())
        return ",".join(entries)

    def wrap_dek(self, dek: bytes, *, tenant_id: str, dek_version: int) -> bytes:
        """``dek`` wrapped under the active KEK, bound to the tenant and the DEK version."""
        if len(dek) != KEY_SIZE:
            raise ValueError(f"a data key is {KEY_SIZE} bytes, not {len(dek)}")
        header = _header(self._active_id)
        nonce = os.urandom(NONCE_SIZE)
        aad = _associated_data(header, tenant_id, dek_version)
        return header + nonce + AESGCM(self._keys[self._active_id]).encrypt(nonce, dek, aad)

    def unwrap_dek(self, wrapped: bytes, *, tenant_id: str, dek_version: int) -> bytes:
        """The DEK in ``wrapped``, if it was wrapped for this tenant and DEK version.

        Raises :class:`UnknownKek` when the ring lacks the KEK that wrapped it,
        :class:`WrappedKeyBroken` when it does not authenticate, and
        :class:`WrappedKeyFormatError` when it is not a wrapped DEK at all.
        """
        parts = _split(wrapped)
        key = self._keys.get(parts.kek_id)
        if key is None:
            raise UnknownKek(parts.kek_id, self.ids)
        aad = _associated_data(parts.header, tenant_id, dek_version)
        try:
            return AESGCM(key).decrypt(parts.nonce, parts.ciphertext, aad)
        except InvalidTag as exc:
            raise WrappedKeyBroken(tenant_id, dek_version, parts.kek_id) from exc

    def kek_id_of(self, wrapped: bytes) -> str:
        """The id of the KEK that wrapped ``wrapped`` (whether or not the ring holds it)."""
        return _split(wrapped).kek_id

    def needs_rewrap(self, wrapped: bytes) -> bool:
        """True when ``wrapped`` is not wrapped by the active KEK."""
        return self.kek_id_of(wrapped) != self._active_id

    def __repr__(self) -> str:
        return f"KekRing(active_id={self._active_id!r}, ids={self.ids!r})"

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"KekRing is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"KekRing is immutable (cannot delete {name!r})")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a KekRing is not picklable: it holds key material")

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: object) -> Self:
        return self


def parse_kek_ring(text: str) -> KekRing:
    """The ring described by ``text`` in ``TENANTRY_KEK`` syntax (see the module docstring).

    Errors raise :class:`KeyRingError` naming the entry by position, never echoing its text.
    """
    if not text.strip():
        raise KeyRingError(f"empty: {_SYNTAX}")
    return KekRing(_parse_entry(position, entry) for position, entry in _entries(text))


def load_or_create_ring(env_value: str | None, key_file: Path) -> tuple[KekRing, bool]:
    """The ring from ``TENANTRY_KEK``, else from ``key_file``, else a new one written there.

    The flag is True when the ring was generated just now, so the caller can warn that
    production must supply ``TENANTRY_KEK``. A key file readable by others is refused.
    """
    if env_value and env_value.strip():
        return parse_kek_ring(env_value), False
    text = keyfile.read_private(key_file, KeyRingError)
    if text is not None:
        return _parse_key_file(text, key_file), False
    ring = KekRing.generate()
    if keyfile.create_private(key_file, ring.to_config() + "\n", KeyRingError):
        return ring, True
    # Another process created the file first; its ring is the one everybody uses.
    text = keyfile.read_private(key_file, KeyRingError)
    if text is None:
        raise KeyRingError(f"not set, and the key file {key_file} vanished while being created")
    return _parse_key_file(text, key_file), False


def read_ring_file(key_file: Path) -> KekRing | None:
    """The ring in ``key_file`` as it is now, or None if there is no such file.

    Unlike :func:`load_or_create_ring` it never creates one: a process that already holds a
    ring re-reads the file only to follow a rotation made beside it.
    """
    text = keyfile.read_private(key_file, KeyRingError)
    return None if text is None else _parse_key_file(text, key_file)


def ring_file_signature(key_file: Path) -> tuple[int, int, int] | None:
    """What changes when ``key_file`` is replaced or rewritten (inode, size, mtime), or None
    if there is no such file."""
    try:
        status = key_file.stat()
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


def write_ring(ring: KekRing, key_file: Path) -> None:
    """Replace ``key_file`` (mode 0600) with ``ring``, atomically."""
    keyfile.replace_private(key_file, ring.to_config() + "\n", KeyRingError)


def _checked_keys(keys: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    checked: list[tuple[str, bytes]] = []
    positions: dict[str, int] = {}
    for position, (kek_id, key) in enumerate(keys, start=1):
        _check_id(position, kek_id)
        if kek_id in positions:
            raise KeyRingError(f"entries {positions[kek_id]} and {position} have the same id")
        if len(key) != KEY_SIZE:
            raise KeyRingError(
                f"entry {position}: key is {len(key)} bytes, expected {KEY_SIZE} "
                "(generate one with `openssl rand -base64 32`)"
            )
        positions[kek_id] = position
        checked.append((kek_id, bytes(key)))
    if not checked:
        raise KeyRingError(f"no keys: {_SYNTAX}")
    return checked


def _check_id(position: int, kek_id: str) -> None:
    if not _KEK_ID.fullmatch(kek_id):
        raise KeyRingError(f"entry {position}: invalid key id ({_ID_RULE})")


def _entries(text: str) -> Iterable[tuple[int, str]]:
    return enumerate((entry.strip() for entry in text.split(",")), start=1)


def _parse_entry(position: int, entry: str) -> tuple[str, bytes]:
    if not entry:
        raise KeyRingError(f"entry {position} is empty (a stray comma?); {_SYNTAX}")
    kek_id, colon, encoded = entry.partition(":")
    if not colon:
        raise KeyRingError(f"entry {position} has no ':' between id and key; {_SYNTAX}")
    _check_id(position, kek_id.strip())
    return kek_id.strip(), _decode_key(position, encoded.strip())


def _decode_key(position: int, encoded: str) -> bytes:
    if not encoded:
        raise KeyRingError(f"entry {position}: key is empty")
    standard = encoded.replace("-", "+").replace("_", "/")
    standard += "=" * (-len(standard) % 4)
    try:
        return base64.b64decode(standard, validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise KeyRingError(f"entry {position}: key is not valid base64") from exc


def _encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def _fresh_id(taken: Iterable[str]) -> str:
    taken = set(taken)
    while True:
        today = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
        kek_id = f"k{today}{secrets.token_hex(2)}"
        if kek_id not in taken:
            return kek_id


def _header(kek_id: str) -> bytes:
    encoded = kek_id.encode("ascii")
    return MAGIC + bytes([FORMAT_VERSION, len(encoded)]) + encoded


class _WrappedParts(NamedTuple):
    header: bytes
    kek_id: str
    nonce: bytes
    ciphertext: bytes


def _split(wrapped: bytes) -> _WrappedParts:
    """The parts of a v1 wrapped DEK, after checking its header and length."""
    fixed = len(MAGIC) + 2
    if len(wrapped) < fixed:
        raise WrappedKeyFormatError(f"wrapped data key truncated: {len(wrapped)} bytes")
    if wrapped[: len(MAGIC)] != MAGIC:
        raise WrappedKeyFormatError("not a wrapped data key: magic bytes are not 'TWK'")
    if wrapped[len(MAGIC)] != FORMAT_VERSION:
        raise WrappedKeyFormatError(
            f"unknown wrapped data key format version {wrapped[len(MAGIC)]}"
        )
    header_size = fixed + wrapped[len(MAGIC) + 1]
    expected = header_size + _WRAPPED_SIZE_AFTER_ID
    if len(wrapped) != expected:
        raise WrappedKeyFormatError(
            f"wrapped data key is {len(wrapped)} bytes, expected {expected}"
        )
    kek_id = wrapped[fixed:header_size].decode("ascii", errors="replace")
    if not _KEK_ID.fullmatch(kek_id):
        raise WrappedKeyFormatError("wrapped data key names an invalid KEK id")
    nonce_end = header_size + NONCE_SIZE
    return _WrappedParts(
        wrapped[:header_size], kek_id, wrapped[header_size:nonce_end], wrapped[nonce_end:]
    )


def _associated_data(header: bytes, tenant_id: str, dek_version: int) -> bytes:
    if "\0" in tenant_id:
        raise ValueError("tenant_id may not contain NUL")
    if isinstance(dek_version, bool) or dek_version < 0:
        raise ValueError(f"dek_version must be a non-negative integer, not {dek_version!r}")
    return header + _CONTEXT_LABEL + tenant_id.encode() + b"\0" + str(dek_version).encode()


def _parse_key_file(text: str, key_file: Path) -> KekRing:
    try:
        return parse_kek_ring(text)
    except KeyRingError as exc:
        problem = f"not set, and the key file {key_file} is invalid: {exc.problem}"
        raise KeyRingError(problem) from exc
