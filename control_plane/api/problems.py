"""Every error the API returns is an RFC 9457 ``application/problem+json`` body; this module
is the one place exceptions become problems."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from control_plane.errors import GatewayUnavailable, TenantryError, TooManyAttempts
from control_plane.vault import providers
from control_plane.vault.errors import VaultError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int, title: str, detail: str, type_: str = "about:blank", **extra: Any
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    body.update(extra)
    headers = {"WWW-Authenticate": 'Bearer realm="tenantry"'} if status == 401 else None
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _tenantry_error(request: Request[Any, Any, Any], exc: TenantryError) -> Response[Any]:
    response = problem(
        exc.status_code, exc.title, exc.detail, exc.problem_type, instance=request.url.path
    )
    if isinstance(exc, TooManyAttempts | GatewayUnavailable):
        response.headers["Retry-After"] = str(max(1, exc.retry_after))
    return response


def _located(error: dict[str, Any]) -> str:
    """The message, naming the field when it is one (not the body as a whole)."""
    key, message = error.get("key"), str(error.get("message"))
    return f"{key}: {message}" if key and key != "data" else message


def _validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    errors = exc.extra if isinstance(exc.extra, list) else []
    messages = [_located(e) for e in errors if isinstance(e, dict) and e.get("message")]
    detail = "; ".join(messages) or exc.detail
    return problem(
        400,
        "Invalid request",
        detail,
        "https://tenantry.dev/problems/invalid-request",
        instance=request.url.path,
        errors=errors,
    )


_PROVIDER_PROBLEMS: dict[type[providers.ProviderError], tuple[int, str, str]] = {
    providers.UnknownProvider: (404, "Unknown provider", "unknown-provider"),
    providers.InvalidCredentialFields: (422, "Invalid credential", "invalid-credential"),
    providers.CredentialRefused: (422, "Credential refused", "credential-refused"),
    providers.ProviderUnreachable: (502, "Provider unreachable", "provider-unreachable"),
}


def _provider_error(request: Request[Any, Any, Any], exc: providers.ProviderError) -> Response[Any]:
    status, title, slug = _PROVIDER_PROBLEMS.get(
        type(exc), (422, "Credential problem", "credential")
    )
    return problem(
        status,
        title,
        str(exc),
        f"https://tenantry.dev/problems/{slug}",
        instance=request.url.path,
        provider=exc.provider,
    )


def _vault_error(request: Request[Any, Any, Any], exc: VaultError) -> Response[Any]:
    log.error("vault error on %s: %s", request.url.path, type(exc).__name__)
    return problem(
        500,
        "Vault error",
        f"the credential vault refused the operation ({type(exc).__name__}); see the log",
        instance=request.url.path,
    )


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    detail = exc.detail
    if exc.status_code == 404 and detail in ("Not Found", ""):
        detail = f"no such resource: {request.url.path}"
    return problem(exc.status_code, title, detail, instance=request.url.path)


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Internal error",
        "the control plane failed to handle this request; see its log",
        instance=request.url.path,
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    TenantryError: _tenantry_error,
    providers.ProviderError: _provider_error,
    VaultError: _vault_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected_error,
}
