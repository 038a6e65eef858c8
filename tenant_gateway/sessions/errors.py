"""The sessions package's exception root."""

from __future__ import annotations

from tenant_gateway.settings import GatewayError


class SessionError(GatewayError):
    """Root of the errors of sessions; as itself: the session store failed."""

    problem = "sessions-unavailable"
    title = "Session store unavailable"
    code = "sessions_unavailable"
