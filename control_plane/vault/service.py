"""Tenants' credentials at rest: sealed under the tenant's DEK, which is stored only wrapped
by the active KEK of the ring. Plaintext exists only transiently in this process while a
credential is stored, validated or rotated, and in the memory of the tenant's gateway.

Rotation is resumable: ``rotate_kek`` rewraps one DEK per transaction (a rerun continues
with the DEKs still under an old KEK); ``rotate_dek`` keeps the next DEK as *pending* while
it re-encrypts credentials one by one, and promotes it when none is left under the old one.

On the embedded default the ring lives in a key file that ``tenantry vault rotate-kek
--new-key`` (another process) extends with a new active key. A running vault follows it:
before wrapping a DEK it takes the file again if it changed, and a DEK wrapped by a key it
does not know makes it re-read the file once before giving up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane import audit
from control_plane.db.engine import Database
from control_plane.db.models import CredentialRow, TenantDataKeyRow, TenantRow
from control_plane.db.values import aware, new_id, utcnow
from control_plane.errors import ConflictError, NotFoundError
from control_plane.vault import providers
from control_plane.vault.digests import TokenDigests
from control_plane.vault.errors import KeyRingError, UnknownKek
from control_plane.vault.keyring import KekRing, new_dek, read_ring_file, ring_file_signature
from tenant_gateway.contract import TENANT_SUSPENDED_PROBLEM, SealedCredential, UnsealResponse
from tenant_gateway.redaction import SECRET_VALUES, SecretValues
from tenant_gateway.sealed import open_credential, seal_credential

Progress = Callable[[int, int], Awaitable[None] | None]
"""Told ``(done, total)`` as a rotation goes; may return an awaitable to pace it."""

log = logging.getLogger(__name__)

ChangeListener = Callable[[str], None]

IDENTITY = "gateway_identity"
"""Reserved provider name: the gateway's identity token, sealed like a credential so that
rotation and crypto-shredding cover it too. Never listed, never put in a bundle."""
VERIFIED_FOR = 10.0
"""Seconds a gateway's proved identity token is taken again without opening it."""


class UnsealRefused(ConflictError):
    """The control plane will not hand this gateway its data keys."""

    status_code = 403
    problem_type = "https://tenantry.dev/problems/unseal-refused"
    title = "Unseal refused"


class GatewayRefused(ConflictError):
    """The caller of the internal API is not recognised as the tenant's gateway."""

    status_code = 403
    problem_type = "https://tenantry.dev/problems/gateway-refused"
    title = "Gateway refused"


class TenantSuspended(UnsealRefused):
    """Unseal refused because the tenant is suspended (the gateway then refuses model calls)."""

    problem_type = TENANT_SUSPENDED_PROBLEM
    title = "Tenant suspended"


class CredentialRead(msgspec.Struct, kw_only=True):
    """A stored credential as the API shows it: metadata and a masked hint, never the value."""

    provider: str
    version: int
    hint: str
    fields: dict[str, str]
    created_at: datetime
    updated_at: datetime


def _read(row: CredentialRow) -> CredentialRead:
    return CredentialRead(
        provider=row.provider,
        version=row.version,
        hint=row.hint,
        fields=dict(row.public or {}),
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
    )


def _context(tenant_id: str, credential_id: str, version: int) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "credential_id": credential_id, "version": version}


def _secret_field_names(provider_name: str) -> frozenset[str] | None:
    """The names of the provider's secret fields; None (every field) if it is unknown."""
    if provider_name == IDENTITY:
        # Shaped (``tgi_…``), so masked anyway; every unseal reads one, and registering them
        # would crowd credential values out of the registry.
        return frozenset()
    try:
        provider = providers.get_provider(provider_name)
    except providers.UnknownProvider:
        return None
    return frozenset(f.name for f in provider.fields if f.secret)


class CredentialVault:
    def __init__(
        self,
        db: Database,
        ring: KekRing,
        *,
        http: httpx.AsyncClient,
        bases: providers.ProviderBases,
        digests: TokenDigests,
        ring_file: Path | None = None,
        on_change: ChangeListener = lambda _tenant_id: None,
        secret_values: SecretValues = SECRET_VALUES,
    ) -> None:
        self.db = db
        self.ring = ring
        self.digests = digests
        self.ring_file = ring_file
        self._ring_signature: tuple[int, int, int] | None = None
        """Of the ring file as last read; None until it is first compared."""
        self.http = http
        self.bases = bases
        self.on_change = on_change
        self._verified: dict[str, tuple[bytes, float]] = {}
        """Per tenant, the SHA-256 of the identity token a gateway proved lately, and until
        when that proof is taken again without opening the credential (``VERIFIED_FOR``)."""
        self.secret_values = secret_values
        """Where plaintext values this process handles are registered, so the log filter
        masks them even when they have no recognisable shape."""

    # -- data keys -------------------------------------------------------------------------

    def add_tenant_key(self, session: AsyncSession, tenant_id: str) -> None:
        """Give a new tenant its DEK, in the caller's (tenant-creating) transaction."""
        now = utcnow()
        wrapped, kek_id = self._wrap_dek(new_dek(), tenant_id, 1)
        session.add(
            TenantDataKeyRow(
                tenant_id=tenant_id,
                dek_version=1,
                wrapped_dek=wrapped,
                kek_id=kek_id,
                pending_version=None,
                pending_wrapped_dek=None,
                created_at=now,
                updated_at=now,
                destroyed_at=None,
            )
        )

    async def destroy_tenant_key(self, session: AsyncSession, tenant_id: str) -> None:
        """Crypto-shred: forget the tenant's DEK, so its ciphertexts are unreadable forever."""
        self._verified.pop(tenant_id, None)
        row = await session.get(TenantDataKeyRow, tenant_id, with_for_update=True)
        if row is None or row.destroyed_at is not None:
            return
        row.wrapped_dek = None
        row.pending_wrapped_dek = None
        row.pending_version = None
        row.kek_id = None
        row.destroyed_at = row.updated_at = utcnow()
        for credential in await session.scalars(
            select(CredentialRow).where(CredentialRow.tenant_id == tenant_id)
        ):
            await session.delete(credential)

    async def _key_row(
        self, session: AsyncSession, tenant_id: str, *, lock: bool = False
    ) -> TenantDataKeyRow:
        row = await session.get(TenantDataKeyRow, tenant_id, with_for_update=lock)
        if row is None or row.wrapped_dek is None:
            raise ConflictError("the tenant's data key is gone; its credentials are unreadable")
        return row

    def _unwrap(self, row: TenantDataKeyRow, version: int) -> bytes:
        if version == row.dek_version and row.wrapped_dek is not None:
            wrapped = row.wrapped_dek
        elif version == row.pending_version and row.pending_wrapped_dek is not None:
            wrapped = row.pending_wrapped_dek
        else:
            raise ConflictError(f"no data key version {version} for this tenant")
        return self._unwrap_dek(wrapped, row.tenant_id, version)

    def _unwrap_dek(self, wrapped: bytes, tenant_id: str, version: int) -> bytes:
        try:
            return self.ring.unwrap_dek(wrapped, tenant_id=tenant_id, dek_version=version)
        except UnknownKek:
            # A `tenantry vault rotate-kek --new-key` beside us may have added the key.
            if not self._follow_ring_file(always=True):
                raise
            return self.ring.unwrap_dek(wrapped, tenant_id=tenant_id, dek_version=version)

    def _wrap_dek(self, dek: bytes, tenant_id: str, version: int) -> tuple[bytes, str]:
        """``dek`` wrapped under the active KEK of the ring as it is now, and that KEK's id."""
        self._follow_ring_file()
        ring = self.ring
        return ring.wrap_dek(dek, tenant_id=tenant_id, dek_version=version), ring.active_id

    def _follow_ring_file(self, *, always: bool = False) -> bool:
        """Take the ring file again if it changed since it was read (or ``always``); True if
        a ring was taken. Never creates the file; an unusable one leaves the ring as it was."""
        if self.ring_file is None:
            return False
        signature = ring_file_signature(self.ring_file)
        if signature == self._ring_signature and not always:
            return False
        try:
            ring = read_ring_file(self.ring_file)
        except KeyRingError as exc:
            log.warning("keeping the key ring in use: %s", exc)
            return False
        self._ring_signature = signature
        if ring is None:
            return False
        self.ring = ring
        return True

    @staticmethod
    def _write_version(row: TenantDataKeyRow) -> int:
        """New ciphertexts go under the pending DEK while a DEK rotation is under way."""
        return row.pending_version if row.pending_version is not None else row.dek_version

    # -- credentials -----------------------------------------------------------------------

    async def put(
        self, tenant_id: str, provider_name: str, submitted: dict[str, object], *, validate: bool
    ) -> CredentialRead:
        provider = providers.get_provider(provider_name)
        self._remember(provider.name, submitted)
        values = providers.check_fields(provider, submitted)
        if validate:
            await provider.validate(values, self.http, self.bases)
        result = await self._store(
            tenant_id,
            provider.name,
            values,
            hint=providers.hint(provider, values),
            public=providers.public_fields(provider, values),
        )
        self.on_change(tenant_id)
        return result

    async def _store(
        self,
        tenant_id: str,
        provider_name: str,
        values: dict[str, str],
        *,
        hint: str,
        public: dict[str, str],
    ) -> CredentialRead:
        plaintext = json.dumps(values, sort_keys=True).encode()
        async with self.db.transaction(tenant=tenant_id) as session:
            tenant = await session.get(TenantRow, tenant_id)
            if tenant is None:
                raise NotFoundError(f"no tenant {tenant_id!r}")
            if tenant.delete_requested:
                raise ConflictError(f"tenant {tenant.slug} is being deleted")
            # Locked: writes of one tenant's credentials take their versions one at a time
            # (two writers must never seal different values under the same version).
            keys = await self._key_row(session, tenant_id, lock=True)
            dek_version = self._write_version(keys)
            dek = self._unwrap(keys, dek_version)
            row = await session.scalar(
                select(CredentialRow).where(
                    CredentialRow.tenant_id == tenant_id, CredentialRow.provider == provider_name
                )
            )
            now = utcnow()
            if row is None:
                row = CredentialRow(
                    id=new_id(),
                    tenant_id=tenant_id,
                    provider=provider_name,
                    version=0,
                    created_at=now,
                )
                session.add(row)
            row.version += 1
            row.dek_version = dek_version
            row.ciphertext = seal_credential(
                dek, plaintext, **_context(tenant_id, row.id, row.version)
            )
            row.hint = hint
            row.public = public
            row.updated_at = now
            audit.record(
                session,
                "credential.store",
                tenant_id=tenant_id,
                target=provider_name,
                version=row.version,
            )
            return _read(row)

    async def list_credentials(self, tenant_id: str) -> list[CredentialRead]:
        async with self.db.transaction(tenant=tenant_id) as session:
            rows = await session.scalars(
                select(CredentialRow)
                .where(CredentialRow.tenant_id == tenant_id, CredentialRow.provider != IDENTITY)
                .order_by(CredentialRow.provider)
            )
            return [_read(row) for row in rows]

    # -- gateway identity and unsealing -----------------------------------------------------

    async def gateway_identity(self, tenant_id: str) -> str:
        """The token the tenant's gateway unseals with; made (and sealed) on first use."""
        try:
            return (await self.reveal(tenant_id, IDENTITY))["token"]
        except NotFoundError:
            pass
        token = "tgi_" + secrets.token_urlsafe(32)
        await self._store(tenant_id, IDENTITY, {"token": token}, hint="…", public={})
        return token

    async def unseal(self, tenant_id: str, authorization: str | None) -> UnsealResponse:
        """The tenant's data keys, for its gateway presenting its identity token.

        One transaction: a gateway waits for this answer before it reports ready."""
        scheme, _, presented = (authorization or "").partition(" ")
        async with self.db.transaction(tenant=tenant_id) as session:
            tenant = await session.get(TenantRow, tenant_id)
            if tenant is None or tenant.delete_requested:
                raise UnsealRefused("this tenant does not exist or is being deleted")
            identity = await session.scalar(
                select(CredentialRow).where(
                    CredentialRow.tenant_id == tenant_id, CredentialRow.provider == IDENTITY
                )
            )
            keys = await session.get(TenantDataKeyRow, tenant_id)
        if identity is None or keys is None or keys.wrapped_dek is None:
            raise UnsealRefused("this tenant has no gateway identity")
        try:
            expected = self._open(keys, identity)["token"]
        except ConflictError:
            raise UnsealRefused("this tenant has no gateway identity") from None
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), expected.encode()
        ):
            raise UnsealRefused("the gateway identity token is not valid")
        if tenant.suspended:
            raise TenantSuspended("the tenant is suspended; its credentials stay sealed")
        versions = [keys.dek_version] + (
            [keys.pending_version] if keys.pending_version is not None else []
        )
        data_keys = {str(v): base64.b64encode(self._unwrap(keys, v)).decode() for v in versions}
        return UnsealResponse(tenant_id=tenant_id, data_keys=data_keys)

    async def verify_gateway(self, tenant_id: str, authorization: str | None) -> None:
        """Check that ``authorization`` is the tenant's gateway's identity token (whatever
        the tenant's state: what a gateway reports is accepted while it can still prove
        who it is); :class:`GatewayRefused` otherwise. A token proved in the last
        ``VERIFIED_FOR`` seconds is taken without opening the credential again (gateways
        call for every reply and usage batch); the identity's end clears that at once."""
        scheme, _, presented = (authorization or "").partition(" ")
        fingerprint = hashlib.sha256(presented.strip().encode()).digest()
        proved = self._verified.get(tenant_id)
        if (
            proved is not None
            and scheme.lower() == "bearer"
            and proved[1] > time.monotonic()
            and hmac.compare_digest(proved[0], fingerprint)
        ):
            return
        try:
            expected = (await self.reveal(tenant_id, IDENTITY))["token"]
        except (NotFoundError, ConflictError):
            raise GatewayRefused("this tenant does not exist or has no gateway identity") from None
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), expected.encode()
        ):
            raise GatewayRefused("the gateway identity token is not valid")
        self._verified[tenant_id] = (fingerprint, time.monotonic() + VERIFIED_FOR)

    async def delete(self, tenant_id: str, provider_name: str) -> None:
        if provider_name == IDENTITY:
            raise NotFoundError(f"no {provider_name!r} credential for this tenant")
        async with self.db.transaction(tenant=tenant_id) as session:
            row = await session.scalar(
                select(CredentialRow).where(
                    CredentialRow.tenant_id == tenant_id, CredentialRow.provider == provider_name
                )
            )
            if row is None:
                raise NotFoundError(f"no {provider_name!r} credential for this tenant")
            await session.delete(row)
            audit.record(session, "credential.delete", tenant_id=tenant_id, target=provider_name)
        self.on_change(tenant_id)

    async def reveal(self, tenant_id: str, provider_name: str) -> dict[str, str]:
        """Decrypt one credential (for delivery to the tenant's gateway and for tests)."""
        async with self.db.transaction(tenant=tenant_id) as session:
            row = await session.scalar(
                select(CredentialRow).where(
                    CredentialRow.tenant_id == tenant_id, CredentialRow.provider == provider_name
                )
            )
            if row is None:
                raise NotFoundError(f"no {provider_name!r} credential for this tenant")
            keys = await self._key_row(session, tenant_id)
        return self._open(keys, row)

    def _open(self, keys: TenantDataKeyRow, row: CredentialRow) -> dict[str, str]:
        """The fields of the credential ``row``, opened with the tenant's DEK it names."""
        dek = self._unwrap(keys, row.dek_version)
        context = _context(row.tenant_id, row.id, row.version)
        values: dict[str, str] = json.loads(open_credential(dek, row.ciphertext, **context))
        self._remember(row.provider, values)
        return values

    def _remember(self, provider_name: str, values: Mapping[str, object]) -> None:
        """Register the secret values among ``values`` with the log filter (memory only)."""
        secret = _secret_field_names(provider_name)
        self.secret_values.add(
            *(
                value.strip()
                for name, value in values.items()
                if isinstance(value, str) and (secret is None or name in secret)
            )
        )

    async def sealed_credentials(self, tenant_id: str) -> list[SealedCredential]:
        """The tenant's credentials as ciphertexts, for its gateway's bundle."""
        async with self.db.transaction(tenant=tenant_id) as session:
            rows = await session.scalars(
                select(CredentialRow)
                .where(CredentialRow.tenant_id == tenant_id, CredentialRow.provider != IDENTITY)
                .order_by(CredentialRow.provider)
            )
            return [
                SealedCredential(
                    id=row.id,
                    provider=row.provider,
                    version=row.version,
                    dek_version=row.dek_version,
                    ciphertext=base64.b64encode(row.ciphertext).decode(),
                )
                for row in rows
            ]

    # -- rotation --------------------------------------------------------------------------

    async def rotate_kek(self, progress: Progress | None = None) -> int:
        """Rewrap every DEK not under the active KEK; one row per transaction; resumable.

        ``progress(done, total)`` is told after each row; if it returns an awaitable, the
        rotation waits for it before the next row.
        """
        self._follow_ring_file()
        async with self.db.transaction(platform="vault: rotate KEK") as session:
            pending = list(
                await session.scalars(
                    select(TenantDataKeyRow.tenant_id).where(
                        TenantDataKeyRow.wrapped_dek.is_not(None),
                    )
                )
            )
        done = 0
        for index, tenant_id in enumerate(pending, 1):
            async with self.db.transaction(tenant=tenant_id) as session:
                row = await session.get(TenantDataKeyRow, tenant_id, with_for_update=True)
                if row is not None and row.wrapped_dek is not None:
                    changed = False
                    for attr, version in (
                        ("wrapped_dek", row.dek_version),
                        ("pending_wrapped_dek", row.pending_version),
                    ):
                        wrapped = getattr(row, attr)
                        if (
                            wrapped is None
                            or version is None
                            or not self.ring.needs_rewrap(wrapped)
                        ):
                            continue
                        dek = self._unwrap_dek(wrapped, tenant_id, version)
                        rewrapped, kek_id = self._wrap_dek(dek, tenant_id, version)
                        setattr(row, attr, rewrapped)
                        changed = True
                    if changed:
                        row.kek_id = kek_id
                        row.updated_at = utcnow()
                        done += 1
            if progress is not None and (shown := progress(index, len(pending))) is not None:
                await shown
        async with self.db.transaction() as session:
            audit.record(session, "vault.rotate_kek", target=self.ring.active_id, rewrapped=done)
        return done

    async def rotate_dek(
        self, tenant_id: str, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Re-encrypt one tenant's credentials under a new DEK; resumable."""
        async with self.db.transaction(tenant=tenant_id) as session:
            await self._key_row(session, tenant_id)
            row = await session.get(TenantDataKeyRow, tenant_id, with_for_update=True)
            assert row is not None
            if row.pending_version is None:
                row.pending_version = row.dek_version + 1
                row.pending_wrapped_dek, _ = self._wrap_dek(
                    new_dek(), tenant_id, row.pending_version
                )
                row.updated_at = utcnow()
            target = row.pending_version
            ids = list(
                await session.scalars(
                    select(CredentialRow.id).where(
                        CredentialRow.tenant_id == tenant_id, CredentialRow.dek_version != target
                    )
                )
            )
        for index, credential_id in enumerate(ids, 1):
            async with self.db.transaction(tenant=tenant_id) as session:
                keys = await self._key_row(session, tenant_id)
                credential = await session.get(CredentialRow, credential_id, with_for_update=True)
                if credential is not None and credential.dek_version != target:
                    old = self._unwrap(keys, credential.dek_version)
                    context = _context(tenant_id, credential.id, credential.version)
                    plaintext = open_credential(old, credential.ciphertext, **context)
                    self._remember(credential.provider, json.loads(plaintext))
                    credential.ciphertext = seal_credential(
                        self._unwrap(keys, target), plaintext, **context
                    )
                    credential.dek_version = target
            if progress is not None:
                progress(index, len(ids))
        async with self.db.transaction(tenant=tenant_id) as session:
            row = await session.get(TenantDataKeyRow, tenant_id, with_for_update=True)
            assert row is not None
            left = await session.scalar(
                select(CredentialRow.id).where(
                    CredentialRow.tenant_id == tenant_id, CredentialRow.dek_version != target
                )
            )
            if left is None and row.pending_version == target:
                row.dek_version = target
                row.wrapped_dek = row.pending_wrapped_dek
                row.kek_id = self.ring.kek_id_of(row.wrapped_dek) if row.wrapped_dek else None
                row.pending_version = None
                row.pending_wrapped_dek = None
                row.updated_at = utcnow()
                # The gateway's bundle changes (new ciphertexts), so its desired state does:
                # a reconciler in another process (rotation run from the CLI) picks it up with
                # its next sweep, not only at the next restart.
                tenant = await session.get(
                    TenantRow, tenant_id, with_for_update={"key_share": True}
                )
                if tenant is not None:
                    tenant.generation += 1
                    tenant.updated_at = row.updated_at
                audit.record(
                    session, "vault.rotate_dek", tenant_id=tenant_id, dek_version=row.dek_version
                )
        self.on_change(tenant_id)
        return len(ids)
