"""The gateway's calls to its control plane's internal API (usage reports, platform-bot
replies), authenticated with the identity token beside the bundle.

The token is read from the runtime dir on every call (a runtime may replace it) and masked in
every log line of the process; the HTTP client is kept between calls and made again only if
the control plane's scheme changes. Over plain http no TLS context is used; over https the
system's trust store is.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import httpx

from tenant_gateway.contract import IDENTITY_FILE, GatewayBundle
from tenant_gateway.redaction import SECRET_VALUES, SecretValues


class ControlPlaneUnreachable(Exception):
    """The call could not be made or was not answered; ``str()`` says why, without secrets."""


class ControlPlaneLink:
    def __init__(
        self,
        bundle: Callable[[], GatewayBundle],
        identity_dir: Path,
        timeout: float | httpx.Timeout,
        *,
        secret_values: SecretValues = SECRET_VALUES,
        purpose: str = "call",
    ) -> None:
        self._bundle = bundle
        self._identity = identity_dir / IDENTITY_FILE
        self._timeout = timeout
        self._secret_values = secret_values
        self._purpose = purpose
        self._http: httpx.AsyncClient | None = None
        self._http_tls = False

    async def post(self, path: str, body: bytes) -> httpx.Response:
        """``POST {control_plane_url}{path}`` (``{tenant_id}`` in ``path`` filled in) with
        ``body`` as JSON; :class:`ControlPlaneUnreachable` if there is no answer."""
        bundle = self._bundle()
        if bundle.control_plane_url is None:
            raise ControlPlaneUnreachable(f"no control plane to {self._purpose}")
        try:
            token = self._identity.read_text().strip()
        except OSError:
            raise ControlPlaneUnreachable("no identity token") from None
        self._secret_values.add(token)
        url = bundle.control_plane_url.rstrip("/") + path.format(tenant_id=bundle.tenant_id)
        try:
            client = await self._client(url)
            return await client.post(
                url,
                content=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise ControlPlaneUnreachable(
                f"control plane unreachable ({type(exc).__name__})"
            ) from None

    async def _client(self, url: str) -> httpx.AsyncClient:
        tls = url.startswith("https://")
        if self._http is not None and self._http_tls == tls:
            return self._http
        if self._http is not None:
            await self._http.aclose()
        # Over plain http no TLS context is used; this one trusts nothing, so it fails closed.
        verify: ssl.SSLContext | bool = True if tls else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._http = httpx.AsyncClient(timeout=self._timeout, trust_env=False, verify=verify)
        self._http_tls = tls
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def problem_detail(response: httpx.Response) -> str:
    """The ``detail`` of a problem answer, at most 500 characters ("" if there is none)."""
    try:
        detail = response.json().get("detail", "")
    except (ValueError, AttributeError):
        return ""
    return str(detail)[:500]
