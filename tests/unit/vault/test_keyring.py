"""The KEK ring: TENANTRY_KEK parsing, DEK wrapping, rotation, and the generated key file."""

from __future__ import annotations

import base64
import copy
import datetime
import os
import pickle
import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from control_plane.vault.errors import (
    KeyRingError,
    UnknownKek,
    VaultError,
    WrappedKeyBroken,
    WrappedKeyFormatError,
)
from control_plane.vault.keyring import (
    KekRing,
    load_or_create_ring,
    new_dek,
    parse_kek_ring,
    write_ring,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
TENANT = "t-1"
DEK_VERSION = 2
NONCE_SIZE = 12


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def spellings(key: bytes) -> list[str]:
    """Ways the key's bytes could show up in text: base64 (both alphabets), hex, bytes repr."""
    standard = b64(key)
    urlsafe = base64.urlsafe_b64encode(key).decode()
    escaped = repr(key)[2:-1]
    return [standard, standard.rstrip("="), urlsafe, urlsafe.rstrip("="), key.hex(), escaped]


def assert_no_key_material(text: str, *keys: bytes) -> None:
    for key in keys:
        for spelling in spellings(key):
            assert spelling not in text


RING_TEXT = f"new:{b64(KEY_B)},old:{b64(KEY_A)}"


@pytest.fixture
def ring() -> KekRing:
    return parse_kek_ring(f"k1:{b64(KEY_A)}")


def wrap(ring: KekRing, dek: bytes) -> bytes:
    return ring.wrap_dek(dek, tenant_id=TENANT, dek_version=DEK_VERSION)


def unwrap(
    ring: KekRing, wrapped: bytes, tenant_id: str = TENANT, version: int = DEK_VERSION
) -> bytes:
    return ring.unwrap_dek(wrapped, tenant_id=tenant_id, dek_version=version)


def flip_bit(data: bytes, position: int, bit: int = 0) -> bytes:
    changed = bytearray(data)
    changed[position] ^= 1 << bit
    return bytes(changed)


# --- TENANTRY_KEK syntax ------------------------------------------------------------------


def test_a_ring_of_two_keys_has_the_first_one_active() -> None:
    ring = parse_kek_ring(RING_TEXT)
    assert ring.active_id == "new"
    assert ring.ids == ("new", "old")
    assert ring.kek_id_of(wrap(ring, new_dek())) == "new"


def test_whitespace_around_entries_and_urlsafe_unpadded_keys_are_accepted() -> None:
    urlsafe = base64.urlsafe_b64encode(KEY_B).decode().rstrip("=")
    spaced = parse_kek_ring(f"  new : {urlsafe} ,\n old:{b64(KEY_A)}\n")
    assert spaced.ids == ("new", "old")
    dek = new_dek()
    assert unwrap(parse_kek_ring(RING_TEXT), wrap(spaced, dek)) == dek


def test_to_config_reads_back_as_the_same_ring() -> None:
    ring = parse_kek_ring(RING_TEXT)
    assert ring.to_config() == RING_TEXT
    dek = new_dek()
    assert unwrap(parse_kek_ring(ring.to_config()), wrap(ring, dek)) == dek


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("  \n", "empty"),
        (f"k1:{b64(KEY_A)},", "entry 2 is empty"),
        (f"k1:{b64(KEY_A)},,k2:{b64(KEY_B)}", "entry 2 is empty"),
        (b64(KEY_A), "entry 1 has no ':'"),
        (f"k1:{b64(KEY_A)},k2:", "entry 2: key is empty"),
        (f"k1:{b64(KEY_A)[:-2]}!!", "entry 1: key is not valid base64"),
        (f"k1:{b64(KEY_A)}\u00e9", "entry 1: key is not valid base64"),
        (f"k1:{b64(KEY_A[:16])}", "entry 1: key is 16 bytes, expected 32"),
        (f"k1:{b64(KEY_A + KEY_B)}", "entry 1: key is 64 bytes, expected 32"),
        (f"k1:{b64(KEY_A)},k1:{b64(KEY_B)}", "entries 1 and 2 have the same id"),
        (f"bad id:{b64(KEY_A)}", "entry 1: invalid key id"),
        (f":{b64(KEY_A)}", "entry 1: invalid key id"),
        (f"{'k' * 65}:{b64(KEY_A)}", "entry 1: invalid key id"),
        (f"k1:{b64(KEY_A)},k\u00e9:{b64(KEY_B)}", "entry 2: invalid key id"),
        # key and id swapped: the "id" is key text and must not be echoed
        (f"{base64.urlsafe_b64encode(KEY_A).decode().rstrip('=')}:k1", "entry 1: key is 1 bytes"),
    ],
)
def test_a_bad_ring_says_what_is_wrong_without_showing_key_material(
    text: str, problem: str
) -> None:
    with pytest.raises(KeyRingError) as caught:
        parse_kek_ring(text)
    message = str(caught.value)
    assert message.startswith("TENANTRY_KEK: ")
    assert problem in message
    assert_no_key_material(message, KEY_A, KEY_B, KEY_A[:16], KEY_A + KEY_B)


def test_key_ids_may_use_letters_digits_dot_underscore_and_dash() -> None:
    kek_id = "Kek_2026.01-a" + "x" * 51  # 64 characters
    assert parse_kek_ring(f"{kek_id}:{b64(KEY_A)}").active_id == kek_id


# --- key material stays private ---------------------------------------------------------


def test_repr_and_str_never_show_key_material() -> None:
    ring = parse_kek_ring(RING_TEXT)
    for text in (repr(ring), str(ring), f"{ring}", repr([ring])):
        assert_no_key_material(text, KEY_A, KEY_B)
        assert "new" in text
        assert "old" in text


def test_a_ring_is_immutable_and_not_picklable() -> None:
    ring = parse_kek_ring(RING_TEXT)
    with pytest.raises(AttributeError):
        ring._active_id = "old"
    with pytest.raises(AttributeError):
        ring.extra = 1
    with pytest.raises(TypeError, match="key material"):
        pickle.dumps(ring)
    assert copy.deepcopy(ring) is ring
    assert ring.active_id == "new"


# --- wrapping DEKs ------------------------------------------------------------------------


def test_new_data_keys_are_random_256_bit_keys() -> None:
    first, second = new_dek(), new_dek()
    assert len(first) == len(second) == 32
    assert first != second


def test_a_wrapped_dek_unwraps_for_its_tenant_and_version(ring: KekRing) -> None:
    dek = new_dek()
    wrapped = wrap(ring, dek)
    assert unwrap(ring, wrapped) == dek
    assert dek not in wrapped
    assert wrap(ring, dek) != wrapped  # fresh nonce every time


def test_the_wrapped_format_is_header_with_kek_id_then_nonce_ciphertext_and_tag(
    ring: KekRing,
) -> None:
    dek = new_dek()
    wrapped = wrap(ring, dek)
    header = b"TWK\x01\x02k1"
    assert wrapped.startswith(header)
    assert len(wrapped) == len(header) + NONCE_SIZE + 32 + 16
    aad = header + b"tenantry/dek/v1\x00" + TENANT.encode() + b"\x00" + str(DEK_VERSION).encode()
    nonce, ciphertext = wrapped[7:19], wrapped[19:]
    assert AESGCM(KEY_A).decrypt(nonce, ciphertext, aad) == dek


@pytest.mark.parametrize("size", [0, 16, 31, 33])
def test_only_32_byte_deks_are_wrapped(ring: KekRing, size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        wrap(ring, bytes(size))


def test_a_tenant_id_with_nul_is_rejected(ring: KekRing) -> None:
    with pytest.raises(ValueError, match="NUL"):
        ring.wrap_dek(new_dek(), tenant_id="t\x00-1", dek_version=DEK_VERSION)


@pytest.mark.parametrize(
    ("position", "errors"),
    [
        (0, WrappedKeyFormatError),  # magic
        (3, WrappedKeyFormatError),  # format version
        (4, WrappedKeyFormatError),  # kek id length
        (5, UnknownKek),  # kek id: "k1" becomes "j1"
        (7, WrappedKeyBroken),  # nonce, first byte
        (18, WrappedKeyBroken),  # nonce, last byte
        (19, WrappedKeyBroken),  # ciphertext, first byte
        (19 + 31, WrappedKeyBroken),  # ciphertext, last byte
        (-16, WrappedKeyBroken),  # tag, first byte
        (-1, WrappedKeyBroken),  # tag, last byte
    ],
    ids=[
        "magic",
        "version",
        "id length",
        "kek id",
        "nonce[0]",
        "nonce[11]",
        "ciphertext[0]",
        "ciphertext[-1]",
        "tag[0]",
        "tag[-1]",
    ],
)
def test_a_flipped_bit_in_a_wrapped_dek_is_refused_with_a_typed_error(
    ring: KekRing, position: int, errors: type[VaultError]
) -> None:
    with pytest.raises(errors):
        unwrap(ring, flip_bit(wrap(ring, new_dek()), position))


def test_no_single_bit_flip_in_a_wrapped_dek_goes_unnoticed(ring: KekRing) -> None:
    wrapped = wrap(ring, new_dek())
    for position in range(len(wrapped)):
        for bit in range(8):
            with pytest.raises((WrappedKeyBroken, WrappedKeyFormatError, UnknownKek)):
                unwrap(ring, flip_bit(wrapped, position, bit))


def test_a_nonce_swapped_in_from_another_wrapping_is_refused(ring: KekRing) -> None:
    dek = new_dek()
    first, second = wrap(ring, dek), wrap(ring, dek)
    with pytest.raises(WrappedKeyBroken):
        unwrap(ring, first[:7] + second[7:19] + first[19:])


@pytest.mark.parametrize(
    ("tenant_id", "version"),
    [("t-2", DEK_VERSION), (TENANT, DEK_VERSION + 1), ("t-", 12)],
    ids=["another tenant", "another dek version", "version shifted into tenant id"],
)
def test_a_wrapped_dek_moved_to_another_tenant_or_version_is_refused(
    ring: KekRing, tenant_id: str, version: int
) -> None:
    with pytest.raises(WrappedKeyBroken) as caught:
        unwrap(ring, ring.wrap_dek(new_dek(), tenant_id="t-1", dek_version=2), tenant_id, version)
    assert tenant_id in str(caught.value)


def test_a_key_of_the_same_id_but_other_bytes_does_not_unwrap(ring: KekRing) -> None:
    impostor = parse_kek_ring(f"k1:{b64(KEY_B)}")
    with pytest.raises(WrappedKeyBroken):
        unwrap(impostor, wrap(ring, new_dek()))


def test_a_ring_without_the_wrapping_kek_says_which_id_is_missing(ring: KekRing) -> None:
    other = parse_kek_ring(f"k2:{b64(KEY_B)}")
    with pytest.raises(UnknownKek) as caught:
        unwrap(other, wrap(ring, new_dek()))
    assert caught.value.kek_id == "k1"
    assert "'k1'" in str(caught.value)
    assert "TENANTRY_KEK" in str(caught.value)


@pytest.mark.parametrize("length", [0, 3, 4, 5, 7, 40])
def test_truncated_wrapped_deks_are_a_format_error(ring: KekRing, length: int) -> None:
    with pytest.raises(WrappedKeyFormatError):
        unwrap(ring, wrap(ring, new_dek())[:length])


def test_a_wrapped_dek_with_bytes_appended_is_a_format_error(ring: KekRing) -> None:
    with pytest.raises(WrappedKeyFormatError, match="expected 67"):
        unwrap(ring, wrap(ring, new_dek()) + b"\x00")


def test_an_unknown_wrapped_format_version_is_a_format_error(ring: KekRing) -> None:
    wrapped = wrap(ring, new_dek())
    with pytest.raises(WrappedKeyFormatError, match="version 2"):
        unwrap(ring, wrapped[:3] + b"\x02" + wrapped[4:])
    with pytest.raises(WrappedKeyFormatError, match="version 2"):
        ring.kek_id_of(wrapped[:3] + b"\x02" + wrapped[4:])


def test_every_failure_is_a_vault_error() -> None:
    for error in (KeyRingError, UnknownKek, WrappedKeyBroken, WrappedKeyFormatError):
        assert issubclass(error, VaultError)


# --- rotation -----------------------------------------------------------------------------


def test_after_a_new_active_key_old_deks_still_unwrap_and_need_rewrapping(
    ring: KekRing,
) -> None:
    dek = new_dek()
    wrapped_by_old = wrap(ring, dek)
    rotated = ring.with_new_active("k2")
    assert rotated.ids == ("k2", "k1")
    assert unwrap(rotated, wrapped_by_old) == dek
    assert rotated.needs_rewrap(wrapped_by_old)
    assert not ring.needs_rewrap(wrapped_by_old)


def test_rewrapping_under_the_new_active_key_drops_the_need_for_the_old_one(
    ring: KekRing,
) -> None:
    dek = new_dek()
    rotated = ring.with_new_active("k2")
    rewrapped = wrap(rotated, unwrap(rotated, wrap(ring, dek)))
    assert rotated.kek_id_of(rewrapped) == "k2"
    assert not rotated.needs_rewrap(rewrapped)
    only_new = parse_kek_ring(rotated.to_config().split(",")[0])
    assert only_new.ids == ("k2",)
    assert unwrap(only_new, rewrapped) == dek


def test_a_new_active_key_leaves_the_original_ring_as_it_was(ring: KekRing) -> None:
    rotated = ring.with_new_active()
    assert ring.ids == ("k1",)
    assert rotated.ids == (rotated.active_id, "k1")
    assert rotated.to_config().endswith(ring.to_config())


def test_a_new_active_key_cannot_reuse_an_id(ring: KekRing) -> None:
    with pytest.raises(KeyRingError, match="already has a key with id 'k1'"):
        ring.with_new_active("k1")


def test_generated_ids_carry_the_utc_date() -> None:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
    generated = KekRing.generate()
    assert re.fullmatch(rf"k{today}[0-9a-f]{{4}}", generated.active_id)
    assert re.fullmatch(rf"k{today}[0-9a-f]{{4}}", generated.with_new_active().active_id)
    assert KekRing.generate("mine").ids == ("mine",)


def test_generated_rings_hold_distinct_random_keys() -> None:
    first, second = KekRing.generate("k"), KekRing.generate("k")
    assert first.to_config() != second.to_config()
    with pytest.raises(WrappedKeyBroken):
        unwrap(second, wrap(first, new_dek()))


# --- the key file of the embedded default ------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_without_tenantry_kek_a_ring_is_generated_once_into_a_private_file(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "data" / "kek"
    ring, generated = load_or_create_ring(None, key_file)
    assert generated
    assert mode(key_file) == 0o600
    assert mode(key_file.parent) == 0o700
    again, generated_again = load_or_create_ring("", key_file)
    assert not generated_again
    assert again.to_config() == ring.to_config()
    assert [p.name for p in key_file.parent.iterdir()] == ["kek"]  # no temporary left over


def test_tenantry_kek_wins_over_the_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "kek"
    from_file, _ = load_or_create_ring(None, key_file)
    ring, generated = load_or_create_ring(RING_TEXT, key_file)
    assert not generated
    assert ring.ids == ("new", "old")
    assert load_or_create_ring("  ", key_file)[0].to_config() == from_file.to_config()


def test_tenantry_kek_set_means_no_key_file_is_written(tmp_path: Path) -> None:
    key_file = tmp_path / "kek"
    load_or_create_ring(RING_TEXT, key_file)
    assert not key_file.exists()


@pytest.mark.parametrize("loose", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, loose: int) -> None:
    key_file = tmp_path / "kek"
    load_or_create_ring(None, key_file)
    os.chmod(key_file, loose)
    with pytest.raises(KeyRingError) as caught:
        load_or_create_ring(None, key_file)
    message = str(caught.value)
    assert message.startswith("TENANTRY_KEK: ")
    assert f"chmod 600 {key_file}" in message
    assert f"{loose:04o}" in message


def test_a_broken_key_file_is_named_without_showing_its_keys(tmp_path: Path) -> None:
    key_file = tmp_path / "kek"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, f"k1:{b64(KEY_A)},k1:{b64(KEY_B)}\n".encode())
    os.close(fd)
    with pytest.raises(KeyRingError) as caught:
        load_or_create_ring(None, key_file)
    message = str(caught.value)
    assert message.startswith("TENANTRY_KEK: ")
    assert str(key_file) in message
    assert "entries 1 and 2 have the same id" in message
    assert_no_key_material(message, KEY_A, KEY_B)


def test_write_ring_replaces_the_key_file_privately(tmp_path: Path) -> None:
    key_file = tmp_path / "kek"
    ring, _ = load_or_create_ring(None, key_file)
    rotated = ring.with_new_active()
    write_ring(rotated, key_file)
    assert mode(key_file) == 0o600
    reread, generated = load_or_create_ring(None, key_file)
    assert not generated
    assert reread.ids == rotated.ids
    assert reread.to_config() == rotated.to_config()
