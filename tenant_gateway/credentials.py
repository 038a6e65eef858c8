"""The tenant's credentials, held unsealed in this process's memory and nowhere else.

The bundle carries only ciphertexts. To open them the gateway asks the control plane for
its tenant's data keys (``POST UNSEAL_PATH`` with the identity token from the runtime dir),
keeps the keys and the opened credentials in memory, and does so again whenever a new
bundle arrives (the bundle watcher notices within ``bundle_poll_interval``), so a credential
stored or rotated by an admin works without a restart. A refusal drops every credential
held, and model calls that need one fail clearly; a refusal because the tenant is suspended
makes every model call fail with ``403 tenant_suspended`` until an unseal succeeds again
(retried every ``retry_interval`` seconds while refused).

Everything the keeper unseals (credential fields, data keys, its identity token) is
registered with the log filter (:mod:`tenant_gateway.redaction`), so no log line of this
process shows it, whatever its shape.

Unsealing is on the gateway's start path, so it is kept short. The one request is made with
the standard library's ``http.client`` on a worker thread (the gateway has it loaded already;
an ``httpx`` request would first import ``httpcore``, ``h11`` and anyio's event-loop backend,
about a hundred milliseconds on a busy machine), with a TLS context only for an ``https://``
control plane, made once; and the AEAD library is imported on another worker thread while
the request is in flight.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import http.client
import json
import logging
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import msgspec

from tenant_gateway.contract import (
    IDENTITY_FILE,
    TENANT_SUSPENDED_PROBLEM,
    UNSEAL_PATH,
    GatewayBundle,
    UnsealResponse,
)
from tenant_gateway.redaction import SECRET_VALUES, SecretValues
from tenant_gateway.settings import GatewayError

log = logging.getLogger(__name__)


class _OpenCredential(Protocol):
    def __call__(
        self, dek: bytes, sealed: bytes, *, tenant_id: str, credential_id: str, version: int
    ) -> bytes: ...


def _import_sealed() -> tuple[type[Exception], _OpenCredential]:
    # Imported here: a tenant without credentials never loads the AEAD library.
    from tenant_gateway.sealed import SealError, open_credential

    return SealError, open_credential


async def _load_sealed() -> tuple[type[Exception], _OpenCredential]:
    """:mod:`tenant_gateway.sealed`'s pieces; its first import runs on a worker thread."""
    if "tenant_gateway.sealed" in sys.modules:
        return _import_sealed()
    return await asyncio.to_thread(_import_sealed)


MAX_ANSWER = 1 << 20
"""Largest unseal answer read (a few data keys are a few hundred bytes)."""


def _post(url: str, token: str, timeout: float, tls: ssl.SSLContext | None) -> tuple[int, bytes]:
    """``POST url`` with the identity token and no body: the answer's status and body.

    Blocking (run it on a worker thread); one connection, closed afterwards."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    connection = (
        http.client.HTTPSConnection(host, parts.port, timeout=timeout, context=tls)
        if parts.scheme == "https"
        else http.client.HTTPConnection(host, parts.port, timeout=timeout)
    )
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
        connection.request("POST", path or "/", headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read(MAX_ANSWER)
    finally:
        connection.close()


class CredentialsSealed(GatewayError):
    """A model call needs a credential the gateway could not unseal."""

    status_code = 403
    problem = "credentials-sealed"
    title = "Credentials sealed"
    error_type = "permission_error"
    code = "credentials_sealed"


class TenantSuspended(GatewayError):
    """The control plane refused to unseal because the tenant is suspended."""

    status_code = 403
    problem = "tenant-suspended"
    title = "Tenant suspended"
    error_type = "permission_error"
    code = "tenant_suspended"


class CredentialKeeper:
    def __init__(
        self,
        runtime_dir: Path,
        *,
        timeout: float = 5.0,
        retry_interval: float = 5.0,
        secret_values: SecretValues = SECRET_VALUES,
    ) -> None:
        self.runtime_dir = runtime_dir
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.secret_values = secret_values
        self._tls: ssl.SSLContext | None = None
        self._data_keys: dict[int, bytes] = {}
        self._credentials: dict[str, dict[str, str]] = {}
        self.refusal: str | None = None
        self.suspended = False
        """Set when the control plane answered that the tenant is suspended."""

    def check_serving(self) -> None:
        """Raise :class:`TenantSuspended` while the tenant is suspended."""
        if self.suspended:
            raise TenantSuspended(
                "this tenant is suspended: model calls are refused until it is resumed"
            )

    async def keep_trying(self, current: Callable[[], GatewayBundle]) -> None:
        """While unsealing is refused, try again every ``retry_interval`` seconds, so a
        resumed tenant's gateway serves again without waiting for a new bundle."""
        while True:
            await asyncio.sleep(self.retry_interval)
            if self.refusal is not None:
                await self.sync(current())

    @property
    def providers(self) -> list[str]:
        return sorted(self._credentials)

    def find(self, provider: str) -> dict[str, str] | None:
        """The opened fields of ``provider``'s credential, None if the gateway holds none."""
        return self._credentials.get(provider)

    def get(self, provider: str) -> dict[str, str]:
        """The opened fields of ``provider``'s credential, or CredentialsSealed."""
        fields = self.find(provider)
        if fields is not None:
            return fields
        raise CredentialsSealed(self.refusal or f"this tenant has no {provider} credential")

    async def sync(self, bundle: GatewayBundle) -> None:
        """Open the bundle's credentials, unsealing data keys this gateway lacks."""
        if not bundle.credentials:
            self._credentials, self.refusal = {}, None
            return
        started = time.perf_counter()
        loading = asyncio.ensure_future(_load_sealed())  # overlaps the unseal round trip
        needed = {c.dek_version for c in bundle.credentials}
        stale = not needed <= set(self._data_keys) or self.refusal is not None
        try:
            unsealed = not stale or await self._unseal(bundle)
        finally:
            seal_error, open_credential = await loading
        if not unsealed:
            return
        opened: dict[str, dict[str, str]] = {}
        for credential in bundle.credentials:
            dek = self._data_keys.get(credential.dek_version)
            if dek is None:
                continue
            try:
                plaintext = open_credential(
                    dek,
                    base64.b64decode(credential.ciphertext),
                    tenant_id=bundle.tenant_id,
                    credential_id=credential.id,
                    version=credential.version,
                )
                fields = json.loads(plaintext)
                if not isinstance(fields, dict):
                    raise ValueError("not a JSON object")
            except (seal_error, binascii.Error, ValueError) as exc:
                log.warning(
                    "cannot open the %s credential: %s", credential.provider, type(exc).__name__
                )
                continue
            self.secret_values.add(*(v for v in fields.values() if isinstance(v, str)))
            opened[credential.provider] = fields
        self._credentials = opened
        if stale:
            elapsed = (time.perf_counter() - started) * 1000
            log.info("unsealed %d credential(s) in %.1f ms", len(opened), elapsed)

    async def _unseal(self, bundle: GatewayBundle) -> bool:
        if bundle.control_plane_url is None:
            return self._refuse("no control plane to unseal with")
        try:
            token = (self.runtime_dir / IDENTITY_FILE).read_text().strip()
        except OSError:
            return self._refuse("no identity token")
        self.secret_values.add(token)
        url = bundle.control_plane_url.rstrip("/") + UNSEAL_PATH.format(tenant_id=bundle.tenant_id)
        if url.startswith("https://") and self._tls is None:
            self._tls = ssl.create_default_context()
        try:
            status, body = await asyncio.to_thread(_post, url, token, self.timeout, self._tls)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return self._refuse(f"control plane unreachable ({type(exc).__name__})")
        if status != 200:
            try:
                problem = json.loads(body)
                detail, kind = str(problem.get("detail", "")), problem.get("type")
            except (ValueError, AttributeError):
                detail, kind = "", None
            self.suspended = status == 403 and kind == TENANT_SUSPENDED_PROBLEM
            return self._refuse(f"unseal refused ({status}): {detail}")
        try:
            answer = msgspec.json.decode(body, type=UnsealResponse)
            self.secret_values.add(*answer.data_keys.values())
            self._data_keys = {int(v): base64.b64decode(k) for v, k in answer.data_keys.items()}
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, binascii.Error):
            return self._refuse("the control plane's unseal answer was not understood")
        self.refusal, self.suspended = None, False
        return True

    def _refuse(self, reason: str) -> bool:
        self._data_keys, self._credentials, self.refusal = {}, {}, reason
        log.warning("credentials stay sealed: %s", reason)
        return False
