"""The interface between the reconciler and a runtime backend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec

from tenant_gateway.contract import GatewayBundle


class GatewaySpec(msgspec.Struct, frozen=True, kw_only=True):
    """What the runtime must run for one tenant."""

    tenant_id: str
    slug: str
    bundle: GatewayBundle
    plan: str = "free"
    """Sizes the gateway where the runtime can (CPU, memory, volume on Kubernetes)."""
    identity_token: str | None = msgspec.field(default=None)
    """The gateway's own credential for unsealing; delivered beside the bundle, 0600."""


class GatewayStatus(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    endpoint: str
    adopted: bool = False
    """True when the gateway was found already running rather than started."""


class RuntimeFailure(Exception):
    """The runtime could not make a gateway match its spec; the reconciler retries."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


GatewayListener = Callable[[str, str, str, dict[str, Any]], Awaitable[None]]
"""Called as ``listener(tenant_id, event_type, message, data)`` for things that happen to a
gateway on its own: ``gateway.crashed``, ``gateway.restarted``, ``gateway.crash_looping``."""


class Runtime(Protocol):
    async def start(self, listener: GatewayListener) -> None:
        """Begin work; find gateways that survived an earlier control plane."""

    async def ensure_running(self, spec: GatewaySpec) -> GatewayStatus:
        """Idempotently make the tenant's gateway run ``spec``; adopt one already running."""

    async def stop(self, tenant_id: str) -> None:
        """Stop the gateway and keep its data (suspension)."""

    async def remove(self, tenant_id: str) -> None:
        """Stop the gateway and remove what the runtime made for it."""

    async def reap(self, live_tenant_ids: set[str]) -> list[str]:
        """Remove gateways of tenants that no longer exist; return their ids."""

    async def close(self) -> None:
        """Release resources; stops gateways if the backend is configured to."""
