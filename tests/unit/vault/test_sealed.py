"""Sealed credentials: what opens, and every way a tampered or moved one is refused."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenant_gateway.sealed import (
    SealBroken,
    SealedFormatError,
    SealError,
    open_credential,
    seal_credential,
)

DEK = bytes(range(32))
OTHER_DEK = bytes(range(1, 33))
TENANT = "t-1"
CREDENTIAL = "c-1"
VERSION = 3
SECRET = b'{"api_key": "sk-planted-secret-0001"}'
HEADER_SIZE = 4
NONCE_SIZE = 12
TAG_SIZE = 16


def seal(plaintext: bytes = SECRET, dek: bytes = DEK) -> bytes:
    return seal_credential(
        dek, plaintext, tenant_id=TENANT, credential_id=CREDENTIAL, version=VERSION
    )


def unseal(
    sealed: bytes,
    dek: bytes = DEK,
    *,
    tenant_id: str = TENANT,
    credential_id: str = CREDENTIAL,
    version: int = VERSION,
) -> bytes:
    return open_credential(
        dek, sealed, tenant_id=tenant_id, credential_id=credential_id, version=version
    )


def flip_bit(data: bytes, position: int, bit: int = 0) -> bytes:
    changed = bytearray(data)
    changed[position] ^= 1 << bit
    return bytes(changed)


_rng = random.Random(20260131)


@pytest.mark.parametrize(
    "plaintext",
    [b"", b"x", SECRET, _rng.randbytes(1000), _rng.randbytes(4096), _rng.randbytes(64 * 1024)],
    ids=["empty", "1 byte", "credential JSON", "1000 bytes", "4 KiB", "64 KiB"],
)
def test_a_sealed_credential_opens_to_its_plaintext(plaintext: bytes) -> None:
    assert unseal(seal(plaintext)) == plaintext


def test_the_format_is_header_nonce_then_ciphertext_and_tag() -> None:
    sealed = seal()
    assert sealed[:HEADER_SIZE] == b"TSC\x01"
    assert len(sealed) == HEADER_SIZE + NONCE_SIZE + len(SECRET) + TAG_SIZE
    assert SECRET not in sealed


def test_the_associated_data_is_the_header_and_the_documented_context() -> None:
    sealed = seal()
    aad = b"TSC\x01" + b"\x00".join(
        [b"tenantry/credential/v1", TENANT.encode(), CREDENTIAL.encode(), str(VERSION).encode()]
    )
    nonce, ciphertext = sealed[4:16], sealed[16:]
    assert AESGCM(DEK).decrypt(nonce, ciphertext, aad) == SECRET


def test_sealing_twice_uses_fresh_nonces() -> None:
    first, second = seal(), seal()
    assert first[4:16] != second[4:16]
    assert first != second


@pytest.mark.parametrize(
    ("position", "error"),
    [
        (0, SealedFormatError),  # magic
        (2, SealedFormatError),  # magic
        (3, SealedFormatError),  # format version
        (4, SealBroken),  # nonce, first byte
        (15, SealBroken),  # nonce, last byte
        (16, SealBroken),  # ciphertext, first byte
        (16 + len(SECRET) - 1, SealBroken),  # ciphertext, last byte
        (-TAG_SIZE, SealBroken),  # tag, first byte
        (-1, SealBroken),  # tag, last byte
    ],
    ids=[
        "magic[0]",
        "magic[2]",
        "version",
        "nonce[0]",
        "nonce[11]",
        "ciphertext[0]",
        "ciphertext[-1]",
        "tag[0]",
        "tag[-1]",
    ],
)
def test_a_flipped_bit_is_refused_with_a_typed_error(position: int, error: type[SealError]) -> None:
    with pytest.raises(error):
        unseal(flip_bit(seal(), position, bit=5))


def test_no_single_bit_flip_anywhere_goes_unnoticed() -> None:
    sealed = seal(b"short secret")
    for position in range(len(sealed)):
        for bit in range(8):
            with pytest.raises((SealBroken, SealedFormatError)):
                unseal(flip_bit(sealed, position, bit))


def test_a_nonce_swapped_in_from_another_sealing_is_refused() -> None:
    first, second = seal(), seal()
    spliced = first[:4] + second[4:16] + first[16:]
    with pytest.raises(SealBroken):
        unseal(spliced)


@pytest.mark.parametrize(
    ("tenant_id", "credential_id", "version"),
    [("t-2", CREDENTIAL, VERSION), (TENANT, "c-2", VERSION), (TENANT, CREDENTIAL, VERSION + 1)],
    ids=["another tenant", "another credential", "another version"],
)
def test_a_credential_replayed_in_another_context_is_refused(
    tenant_id: str, credential_id: str, version: int
) -> None:
    with pytest.raises(SealBroken):
        unseal(seal(), tenant_id=tenant_id, credential_id=credential_id, version=version)


@pytest.mark.parametrize(
    ("sealed_as", "opened_as"),
    [
        (("ab", "c", 1), ("a", "bc", 1)),
        (("a", "b1", 2), ("a", "b", 12)),
    ],
    ids=["tenant into credential id", "credential id into version"],
)
def test_context_fields_cannot_be_shifted_into_one_another(
    sealed_as: tuple[str, str, int], opened_as: tuple[str, str, int]
) -> None:
    tenant_id, credential_id, version = sealed_as
    sealed = seal_credential(
        DEK, SECRET, tenant_id=tenant_id, credential_id=credential_id, version=version
    )
    tenant_id, credential_id, version = opened_as
    with pytest.raises(SealBroken):
        unseal(sealed, tenant_id=tenant_id, credential_id=credential_id, version=version)


@pytest.mark.parametrize(
    ("tenant_id", "credential_id"),
    [("t\x00-1", CREDENTIAL), (TENANT, "c-1\x00")],
    ids=["tenant id", "credential id"],
)
def test_ids_with_nul_are_rejected(tenant_id: str, credential_id: str) -> None:
    with pytest.raises(ValueError, match="NUL"):
        seal_credential(
            DEK, SECRET, tenant_id=tenant_id, credential_id=credential_id, version=VERSION
        )
    with pytest.raises(ValueError, match="NUL"):
        open_credential(
            DEK, seal(), tenant_id=tenant_id, credential_id=credential_id, version=VERSION
        )


def test_a_negative_version_is_rejected() -> None:
    with pytest.raises(ValueError, match="version"):
        seal_credential(DEK, SECRET, tenant_id=TENANT, credential_id=CREDENTIAL, version=-1)


def test_the_wrong_data_key_is_refused() -> None:
    with pytest.raises(SealBroken) as caught:
        unseal(seal(), OTHER_DEK)
    assert CREDENTIAL in str(caught.value)
    assert TENANT in str(caught.value)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_a_data_key_must_be_32_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        seal(dek=bytes(size))
    with pytest.raises(ValueError, match="32 bytes"):
        unseal(seal(), bytes(size))


@pytest.mark.parametrize("length", [0, 2, 3, 4, 16, 31])
def test_truncated_input_is_a_format_error(length: int) -> None:
    with pytest.raises(SealedFormatError, match="truncated"):
        unseal(seal()[:length])


def test_a_cut_tail_does_not_authenticate() -> None:
    with pytest.raises(SealBroken):
        unseal(seal()[:-1])


def test_an_unknown_format_version_is_a_format_error() -> None:
    sealed = seal()
    with pytest.raises(SealedFormatError, match="version 2"):
        unseal(sealed[:3] + b"\x02" + sealed[4:])


def test_bytes_that_were_never_sealed_are_a_format_error() -> None:
    with pytest.raises(SealedFormatError, match="not a sealed credential"):
        unseal(b"sk-this-is-a-plaintext-api-key-not-sealed")


def test_every_failure_is_a_seal_error() -> None:
    assert issubclass(SealedFormatError, SealError)
    assert issubclass(SealBroken, SealError)
    with pytest.raises(SealError):
        unseal(seal(), OTHER_DEK)
