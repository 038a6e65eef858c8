"""The control plane's exception tree; the API maps it to RFC 9457 problems in one place.

::

    TenantryError
    ├── SettingsError          a TENANTRY_* variable or flag has a bad value
    ├── NotFoundError          404
    ├── ConflictError          409 (taken slug, idempotency key reused with another body)
    │   └── InvalidTransition  409 (a lifecycle change the tenant's state does not allow)
    ├── InvalidInputError      422 (well-formed but unacceptable input)
    ├── AuthenticationError    401
    ├── PermissionDenied       403 (authenticated, but the scope is missing)
    ├── TooManyAttempts        429 (login throttled; carries retry_after)
    ├── StorageError           503 (the database refused or is unreachable)
    └── GatewayUnavailable     503 (a tenant's gateway is not running or did not answer;
                                    carries retry_after)
"""

from __future__ import annotations


class TenantryError(Exception):
    """Root of every error the control plane raises on purpose."""

    status_code = 500
    problem_type = "about:blank"
    title = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SettingsError(TenantryError):
    """A configuration value is wrong; the message names the variable."""

    title = "Invalid setting"

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class NotFoundError(TenantryError):
    status_code = 404
    problem_type = "https://tenantry.dev/problems/not-found"
    title = "Not found"


class ConflictError(TenantryError):
    status_code = 409
    problem_type = "https://tenantry.dev/problems/conflict"
    title = "Conflict"


class InvalidTransition(ConflictError):
    problem_type = "https://tenantry.dev/problems/invalid-transition"
    title = "Invalid state transition"


class InvalidInputError(TenantryError):
    status_code = 422
    problem_type = "https://tenantry.dev/problems/invalid-input"
    title = "Invalid input"


class AuthenticationError(TenantryError):
    status_code = 401
    problem_type = "https://tenantry.dev/problems/unauthenticated"
    title = "Unauthenticated"


class PermissionDenied(TenantryError):
    status_code = 403
    problem_type = "https://tenantry.dev/problems/forbidden"
    title = "Forbidden"


class TooManyAttempts(TenantryError):
    status_code = 429
    problem_type = "https://tenantry.dev/problems/too-many-attempts"
    title = "Too many attempts"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class StorageError(TenantryError):
    status_code = 503
    problem_type = "https://tenantry.dev/problems/storage-unavailable"
    title = "Storage unavailable"


class GatewayUnavailable(TenantryError):
    status_code = 503
    problem_type = "https://tenantry.dev/problems/gateway-unavailable"
    title = "Gateway unavailable"

    def __init__(self, detail: str, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
