"""Sealed credentials: a tenant's provider credential encrypted under the tenant's data key.

The control plane seals each credential with the tenant's data key (DEK) and hands the
gateway only the sealed bytes; the gateway opens them with the same DEK. The format is
defined here, in the gateway package, because both sides need it and the gateway must
never import the control plane.

AES-256-GCM with a random 96-bit nonce per sealing. Byte format, version 1:

====================  ======  ==========================================================
field                 bytes   value
====================  ======  ==========================================================
magic                 3       ``b"TSC"`` (Tenantry Sealed Credential)
format version        1       ``0x01``
nonce                 12      random (``os.urandom``), never reused with a DEK
ciphertext ‖ tag      n + 16  AES-256-GCM of the n-byte plaintext, 16-byte tag last
====================  ======  ==========================================================

The associated data (authenticated, not stored) binds a sealed credential to where it
belongs, so bytes moved to another tenant, credential or version do not open::

    header (the 4 bytes above)
    + b"tenantry/credential/v1\\0" + tenant_id + b"\\0" + credential_id + b"\\0" + str(version)

all UTF-8. Ids may not contain NUL, so fields cannot be shifted into one another.

::

    SealError
    ├── SealedFormatError  not a v1 sealed credential (truncated, unknown version, garbled)
    └── SealBroken         authentication failed: wrong DEK, tampered, or wrong context
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"TSC"
FORMAT_VERSION = 1
HEADER = MAGIC + bytes([FORMAT_VERSION])
DEK_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
_CONTEXT_LABEL = b"tenantry/credential/v1\0"


class SealError(Exception):
    """Root of the errors raised when sealing or opening a credential fails."""


class SealedFormatError(SealError):
    """The bytes are not a version-1 sealed credential (truncated, unknown version, garbled)."""


class SealBroken(SealError):
    """The sealed credential did not authenticate.

    The DEK is wrong, the bytes were tampered with, or they were sealed for another tenant,
    credential or version than the one they are opened as.
    """


def seal_credential(
    dek: bytes, plaintext: bytes, *, tenant_id: str, credential_id: str, version: int
) -> bytes:
    """Encrypt ``plaintext`` under ``dek``, bound to tenant, credential and version."""
    nonce = os.urandom(NONCE_SIZE)
    aad = _associated_data(tenant_id, credential_id, version)
    return HEADER + nonce + AESGCM(_checked_dek(dek)).encrypt(nonce, plaintext, aad)


def open_credential(
    dek: bytes, sealed: bytes, *, tenant_id: str, credential_id: str, version: int
) -> bytes:
    """The plaintext of ``sealed``, if it was sealed under ``dek`` for exactly this context.

    Raises :class:`SealedFormatError` for bytes that are not a v1 sealed credential and
    :class:`SealBroken` when they do not authenticate.
    """
    cipher = AESGCM(_checked_dek(dek))
    aad = _associated_data(tenant_id, credential_id, version)
    nonce, ciphertext = _split(sealed)
    try:
        return cipher.decrypt(nonce, ciphertext, aad)
    except InvalidTag as exc:
        raise SealBroken(
            f"credential {credential_id!r} (version {version}) of tenant {tenant_id!r} does not "
            "authenticate: wrong data key, tampered bytes, or sealed for another "
            "tenant/credential/version"
        ) from exc


def _split(sealed: bytes) -> tuple[bytes, bytes]:
    """The nonce and ciphertext‖tag of a v1 sealed credential, after checking its header."""
    if len(sealed) < len(HEADER):
        raise SealedFormatError(f"sealed credential truncated: {len(sealed)} bytes")
    if sealed[: len(MAGIC)] != MAGIC:
        raise SealedFormatError("not a sealed credential: magic bytes are not 'TSC'")
    if sealed[len(MAGIC)] != FORMAT_VERSION:
        raise SealedFormatError(f"unknown sealed credential format version {sealed[len(MAGIC)]}")
    minimum = len(HEADER) + NONCE_SIZE + TAG_SIZE
    if len(sealed) < minimum:
        raise SealedFormatError(
            f"sealed credential truncated: {len(sealed)} bytes, at least {minimum} expected"
        )
    body = sealed[len(HEADER) :]
    return body[:NONCE_SIZE], body[NONCE_SIZE:]


def _associated_data(tenant_id: str, credential_id: str, version: int) -> bytes:
    return b"".join(
        (
            HEADER,
            _CONTEXT_LABEL,
            _context_field("tenant_id", tenant_id),
            b"\0",
            _context_field("credential_id", credential_id),
            b"\0",
            _version_field(version),
        )
    )


def _context_field(name: str, value: str) -> bytes:
    if "\0" in value:
        raise ValueError(f"{name} may not contain NUL")
    return value.encode()


def _version_field(version: int) -> bytes:
    if isinstance(version, bool) or version < 0:
        raise ValueError(f"version must be a non-negative integer, not {version!r}")
    return str(version).encode()


def _checked_dek(dek: bytes) -> bytes:
    if len(dek) != DEK_SIZE:
        raise ValueError(f"a data key is {DEK_SIZE} bytes, not {len(dek)}")
    return dek
