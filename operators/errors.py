"""The operator's one exception tree, so callers catch by meaning, not by library.

::

    OperatorError
    ├── InvalidTenantSpec        the Tenant says something we cannot build (never fixes itself)
    ├── OperatorSettingsError    a TENANTRY_* variable of the operator has a bad value
    └── KubernetesError          the API answered badly or not at all
        ├── KubernetesRefused        4xx that will not fix itself (400, 403, 422, ...)
        └── KubernetesUnavailable    5xx, 409, 429, timeouts, refused connections: retry later

Foreign errors (urllib3, the ``kubernetes`` client, msgspec) are translated into these where
they enter, chained with ``from``. The kopf handlers map them onto ``kopf.PermanentError`` and
``kopf.TemporaryError`` in one place.

This module imports nothing, so the published spec types can raise from it.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Root of every error the operator raises on purpose."""

    @property
    def reason(self) -> str:
        """A CamelCase word for a status condition's ``reason``."""
        return "OperatorError"


class InvalidTenantSpec(OperatorError, ValueError):
    """The Tenant's spec (or name) cannot be turned into a gateway; the message says why."""

    @property
    def reason(self) -> str:
        return "InvalidSpec"


class OperatorSettingsError(OperatorError, ValueError):
    """A setting has a value the operator cannot use; the message names the variable."""

    @property
    def reason(self) -> str:
        return "InvalidSettings"


class KubernetesError(OperatorError):
    """The Kubernetes API did not do what was asked."""

    def __init__(self, message: str, *, status: int = 0, api_reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        """HTTP status of the answer; 0 when there was none (connection failed)."""
        self.api_reason = api_reason
        """The ``reason`` field of the API's Status object (``Forbidden``, ``Invalid``...)."""

    @property
    def reason(self) -> str:
        return self.api_reason or "KubernetesError"


class KubernetesRefused(KubernetesError):
    """A refusal that retrying will not change: bad request, forbidden, invalid object."""


class KubernetesUnavailable(KubernetesError):
    """A failure that may pass: server errors, conflicts, throttling, network trouble."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        api_reason: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, api_reason=api_reason)
        self.retry_after = retry_after
        """Seconds the server asked us to wait (``Retry-After``), if it said."""
