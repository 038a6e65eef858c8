"""What a caller may do: scopes, the roles that grant them, and who a caller is.

Every route of the API declares one scope it needs (``opt={"scope": ...}``). A caller's
rights come from who they are:

* a **platform admin** (a user with ``platform_admin``, or an admin token) holds every scope
  on every tenant, and the installation-wide ones (``tenants:create``, ``users:admin``,
  ``models:read``, ``models:write``, ``audit:read`` across tenants);
* any other **user** holds, in each tenant they belong to, the scopes of their role there
  (:data:`ROLE_SCOPES`), and nothing in other tenants;
* an **API token** holds the scopes written into it, each optionally narrowed to one tenant
  (JupyterHub style: ``credentials:write!tenant=<tenant id>``), and never more than its
  owner holds at the moment it is used.

A caller with no right at all in a tenant is told the tenant does not exist (404), so tenants
cannot be discovered by probing; one that may see the tenant but lacks the scope gets 403.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from control_plane.errors import InvalidInputError


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


SCOPES: Mapping[str, str] = {
    "tenants:read": "see the tenant, its state and its events",
    "tenants:write": "rename, suspend or resume the tenant",
    "tenants:delete": "delete the tenant",
    "tenants:create": "create tenants (platform)",
    "credentials:read": "list the tenant's credentials (masked)",
    "credentials:write": "store and delete the tenant's credentials",
    "gateway-keys:read": "list the tenant's gateway keys (masked)",
    "gateway-keys:write": "create and revoke gateway keys",
    "members:read": "list the tenant's members",
    "members:admin": "invite, change and remove members",
    "audit:read": "read the audit log",
    "usage:read": "read the tenant's usage (requests and tokens, BYOK and platform)",
    "channels:read": "list the tenant's connected chat channels",
    "channels:write": "pair chats with the tenant (pairing codes) and unbind them",
    "users:admin": "create and manage user accounts (platform)",
    "models:read": "list the platform's model catalog (platform)",
    "models:write": "register, change and remove platform models (platform)",
}

PLATFORM_SCOPES = frozenset({"tenants:create", "users:admin", "models:read", "models:write"})
"""Scopes that exist only installation-wide: no tenant role grants them."""

_MEMBER = frozenset(
    {"tenants:read", "members:read", "gateway-keys:read", "usage:read", "channels:read"}
)
_ADMIN = _MEMBER | {
    "channels:write",
    "tenants:write",
    "credentials:read",
    "credentials:write",
    "gateway-keys:write",
    "audit:read",
}
_OWNER = _ADMIN | {"members:admin", "tenants:delete"}

ROLE_SCOPES: Mapping[Role, frozenset[str]] = {
    Role.MEMBER: _MEMBER,
    Role.ADMIN: frozenset(_ADMIN),
    Role.OWNER: frozenset(_OWNER),
}


@dataclass(frozen=True)
class Grant:
    """One scope of an API token, for every tenant (``tenant`` None) or for one."""

    scope: str
    tenant: str | None = None

    def __str__(self) -> str:
        return self.scope if self.tenant is None else f"{self.scope}!tenant={self.tenant}"

    def covers(self, scope: str, tenant_id: str | None) -> bool:
        return self.scope == scope and (self.tenant is None or self.tenant == tenant_id)


def parse_grant(text: str) -> Grant:
    """``scope`` or ``scope!tenant=<tenant id>``; unknown scopes are refused by name."""
    scope, sep, narrowing = text.strip().partition("!")
    if scope not in SCOPES:
        known = ", ".join(SCOPES)
        raise InvalidInputError(f"unknown scope {scope!r}; known scopes: {known}")
    if not sep:
        return Grant(scope)
    key, eq, tenant = narrowing.partition("=")
    if key != "tenant" or not eq or not tenant:
        raise InvalidInputError(
            f"scope {text!r}: narrow a scope with '!tenant=<tenant id>', nothing else"
        )
    if scope in PLATFORM_SCOPES:
        raise InvalidInputError(f"scope {scope!r} is installation-wide and cannot be narrowed")
    return Grant(scope, tenant)


def parse_grants(texts: Iterable[str]) -> frozenset[Grant]:
    return frozenset(parse_grant(text) for text in texts)


class PrincipalKind(StrEnum):
    USER = "user"
    API_TOKEN = "api_token"  # noqa: S105 (a kind, not a secret)
    ADMIN_TOKEN = "admin_token"  # noqa: S105 (a kind, not a secret)
    SYSTEM = "system"


@dataclass(frozen=True)
class Principal:
    """Who is calling, and what they may do; built per request from current data."""

    kind: PrincipalKind
    id: str
    """The user id, or the token id for an admin token."""
    user_id: str | None = None
    platform_admin: bool = False
    roles: Mapping[str, Role] = field(default_factory=dict)
    """The user's role in each tenant they belong to."""
    grants: frozenset[Grant] | None = None
    """An API token's scopes; None means the full rights of the principal."""
    token_id: str | None = None
    session_id: str | None = None

    def sees(self, tenant_id: str) -> bool:
        """Whether the tenant exists for this caller at all (else: 404)."""
        if not self._owner_sees(tenant_id):
            return False
        if self.grants is None:
            return True
        return any(g.tenant is None or g.tenant == tenant_id for g in self.grants)

    def can(self, scope: str, tenant_id: str | None = None) -> bool:
        """Whether this caller holds ``scope`` on ``tenant_id`` (None: installation-wide)."""
        if not self._owner_can(scope, tenant_id):
            return False
        return self.grants is None or any(g.covers(scope, tenant_id) for g in self.grants)

    @property
    def visible_tenants(self) -> frozenset[str] | None:
        """The tenants this caller may list; None means every tenant."""
        if self.platform_admin and (
            self.grants is None or any(g.tenant is None for g in self.grants)
        ):
            return None
        mine = frozenset(self.roles) if not self.platform_admin else frozenset()
        if self.grants is None:
            return mine
        narrowed = frozenset(g.tenant for g in self.grants if g.tenant is not None)
        if self.platform_admin:
            return narrowed
        if any(g.tenant is None for g in self.grants):
            return mine
        return mine & narrowed

    def _owner_sees(self, tenant_id: str) -> bool:
        return self.platform_admin or tenant_id in self.roles

    def _owner_can(self, scope: str, tenant_id: str | None) -> bool:
        if self.platform_admin:
            return True
        if tenant_id is None or scope in PLATFORM_SCOPES:
            return False
        role = self.roles.get(tenant_id)
        return role is not None and scope in ROLE_SCOPES[role]


SYSTEM = Principal(kind=PrincipalKind.SYSTEM, id="system", platform_admin=True)
"""The control plane acting on its own (reconciler, CLI maintenance)."""
