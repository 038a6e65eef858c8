"""The one guard of the API: who is calling, and may they do what the route needs.

Every route under ``/api/`` declares what it needs in its ``opt``:

* ``opt={"scope": "credentials:write"}``: that scope, on the tenant named by the route's
  ``{tenant_ref}`` (an id or a slug) when it has one, else installation-wide;
* ``opt={"scope": AUTHENTICATED}``: any valid credential (the caller's own things);
* ``opt={"scope": PUBLIC}``: nothing (login, refresh, accepting an invitation).

A route under ``/api/`` that declares nothing is refused (500, fail closed); a test walks the
route table so that cannot ship. Routes outside ``/api/`` (health, metrics, the schema, the
gateways' internal endpoint with its own token) are not guarded here.

A tenant the caller has no right in answers 404 exactly like a tenant that does not exist;
a missing scope on a tenant the caller can see, or on an installation-wide route, answers 403
and is audited as ``denied``.
The guard leaves the principal and the resolved tenant id in the request's state
(:func:`principal_of`, :func:`tenant_id_of`) and the acting principal in the audit context.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from control_plane import audit
from control_plane.errors import PermissionDenied
from control_plane.identity.audit_log import AuditLog
from control_plane.identity.authenticate import Authenticator
from control_plane.identity.scopes import Principal
from control_plane.tenants.service import TenantService

SCOPE = "scope"
PUBLIC = "public"
AUTHENTICATED = "authenticated"
TENANT_PARAM = "tenant_ref"
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The caller's ``X-Request-ID`` when it is sane, else a new one (kept per request)."""
    state = connection.scope.setdefault("state", {})
    known = state.get("request_id")
    if isinstance(known, str):
        return known
    offered = connection.headers.get(REQUEST_ID_HEADER, "")
    value = offered if _REQUEST_ID.fullmatch(offered) else secrets.token_hex(8)
    state["request_id"] = value
    return value


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = connection.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise RuntimeError("principal_of() on a route the guard did not authenticate")
    return principal


def tenant_id_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    tenant_id = connection.scope.get("state", {}).get("tenant_id")
    if not isinstance(tenant_id, str):
        raise RuntimeError("tenant_id_of() on a route without {tenant_ref}")
    return tenant_id


async def authorize(
    connection: ASGIConnection[Any, Any, Any, Any], route: BaseRouteHandler
) -> None:
    need = route.opt.get(SCOPE)
    path = connection.scope.get("path", "")
    if need is None:
        # Litestar answers OPTIONS itself (the allowed methods); nothing else goes unguarded.
        if path.startswith("/api/") and connection.scope.get("method") != "OPTIONS":
            raise RuntimeError(f"route {route.handler_name} declares no scope; refusing")
        return
    request_id = request_id_of(connection)
    audit.set_actor(audit.Actor("anonymous", None, request_id))
    if need == PUBLIC:
        return
    authenticator: Authenticator = connection.app.state.authenticator
    principal = await authenticator.authenticate(connection.headers.get("authorization"))
    state = connection.scope.setdefault("state", {})
    state["principal"] = principal
    audit.set_actor(audit.Actor(str(principal.kind), principal.id, request_id))
    audit_log: AuditLog = connection.app.state.audit_log
    tenant_ref = connection.path_params.get(TENANT_PARAM)
    if tenant_ref is None:
        if need != AUTHENTICATED and not principal.can(need):
            await audit_log.record_denied(route.handler_name, need)
            raise PermissionDenied(f"this needs the {need} scope")
        return
    tenants: TenantService = connection.app.state.tenants
    tenant_id = await tenants.resolve_for(str(tenant_ref), principal.sees)
    state["tenant_id"] = tenant_id
    if need != AUTHENTICATED and not principal.can(need, tenant_id):
        await audit_log.record_denied(route.handler_name, need, tenant_id)
        raise PermissionDenied(f"this needs the {need} scope on this tenant")


__all__ = [
    "AUTHENTICATED",
    "PUBLIC",
    "SCOPE",
    "authorize",
    "principal_of",
    "request_id_of",
    "tenant_id_of",
]
