"""The vault's exception tree, kept apart so callers can catch it without importing crypto.

::

    VaultError
    ├── KeyRingError           TENANTRY_KEK (or the generated key file) is unusable
    ├── UnknownKek             a wrapped DEK names a KEK id the ring does not hold
    ├── WrappedKeyBroken       a wrapped DEK did not authenticate (tampered, wrong tenant/key)
    └── WrappedKeyFormatError  the bytes are not a wrapped DEK of a known format

No message ever contains key material.
"""

from __future__ import annotations

KEK_VARIABLE = "TENANTRY_KEK"


class VaultError(Exception):
    """Root of every error the credential vault raises on purpose."""


class KeyRingError(VaultError):
    """The KEK ring configuration is unusable; the message starts with ``TENANTRY_KEK: ``."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{KEK_VARIABLE}: {problem}")
        self.problem = problem


class UnknownKek(VaultError):
    """A wrapped DEK was wrapped by a KEK whose id is not in the ring."""

    def __init__(self, kek_id: str, ring_ids: tuple[str, ...]) -> None:
        super().__init__(
            f"data key is wrapped by KEK {kek_id!r}, which is not in the ring "
            f"({', '.join(ring_ids)}); add it back to {KEK_VARIABLE}"
        )
        self.kek_id = kek_id


class WrappedKeyBroken(VaultError):
    """A wrapped DEK did not authenticate: tampered, or wrapped for another tenant or version."""

    def __init__(self, tenant_id: str, dek_version: int, kek_id: str) -> None:
        super().__init__(
            f"data key version {dek_version} of tenant {tenant_id!r} does not authenticate "
            f"under KEK {kek_id!r}: tampered bytes, or wrapped for another tenant/version"
        )
        self.tenant_id = tenant_id
        self.dek_version = dek_version
        self.kek_id = kek_id


class WrappedKeyFormatError(VaultError):
    """The bytes are not a wrapped DEK of a known format (truncated, unknown version)."""
