"""The vault's two keys, read once at start: the KEK ring and the token hash key.

Production supplies both (``TENANTRY_KEK``, ``TENANTRY_TOKEN_HASH_KEY``); the embedded
default generates each on first start into the data dir, mode 0600, and says so.
"""

from __future__ import annotations

from typing import NamedTuple

from control_plane.settings import Settings
from control_plane.vault.digests import TokenDigests, load_or_create_token_digests
from control_plane.vault.keyring import KekRing, load_or_create_ring


class VaultKeys(NamedTuple):
    ring: KekRing
    digests: TokenDigests
    generated: tuple[str, ...]
    """Warnings for keys generated just now (production must supply them)."""


def load_vault_keys(settings: Settings) -> VaultKeys:
    ring, ring_generated = load_or_create_ring(settings.kek, settings.kek_file)
    digests, digests_generated = load_or_create_token_digests(
        settings.token_hash_key, settings.token_hash_key_file
    )
    generated: list[str] = []
    if ring_generated:
        generated.append(
            f"generated a key-encryption key in {settings.kek_file};"
            " in production supply TENANTRY_KEK"
        )
    if digests_generated:
        generated.append(
            f"generated a token hash key in {settings.token_hash_key_file};"
            " in production supply TENANTRY_TOKEN_HASH_KEY"
        )
    return VaultKeys(ring, digests, tuple(generated))
