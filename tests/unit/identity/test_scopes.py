"""Rights as data: roles grant scopes per tenant, tokens narrow them, nobody exceeds them."""

from __future__ import annotations

import pytest

from control_plane.errors import InvalidInputError
from control_plane.identity.scopes import (
    PLATFORM_SCOPES,
    ROLE_SCOPES,
    SCOPES,
    Grant,
    Principal,
    PrincipalKind,
    Role,
    parse_grant,
    parse_grants,
)

A, B = "tenant-a", "tenant-b"


def user(roles: dict[str, Role], grants: list[str] | None = None) -> Principal:
    return Principal(
        kind=PrincipalKind.USER if grants is None else PrincipalKind.API_TOKEN,
        id="u1",
        user_id="u1",
        roles=roles,
        grants=None if grants is None else parse_grants(grants),
    )


def test_roles_are_nested_and_only_owners_manage_members() -> None:
    assert ROLE_SCOPES[Role.MEMBER] < ROLE_SCOPES[Role.ADMIN] < ROLE_SCOPES[Role.OWNER]
    assert "members:admin" in ROLE_SCOPES[Role.OWNER]
    assert "members:admin" not in ROLE_SCOPES[Role.ADMIN]
    assert "credentials:write" not in ROLE_SCOPES[Role.MEMBER]
    for scopes in ROLE_SCOPES.values():
        assert not scopes & PLATFORM_SCOPES, "no tenant role grants an installation-wide scope"
        assert scopes <= set(SCOPES)


@pytest.mark.parametrize("role", list(Role))
def test_a_role_counts_in_its_tenant_only(role: Role) -> None:
    principal = user({A: role})
    assert principal.sees(A)
    assert not principal.sees(B)
    for scope in SCOPES:
        assert principal.can(scope, A) == (scope in ROLE_SCOPES[role])
        assert not principal.can(scope, B)
        assert not principal.can(scope), "no installation-wide right from a tenant role"
    assert principal.visible_tenants == frozenset({A})


def test_a_platform_admin_can_everything_everywhere() -> None:
    admin = Principal(kind=PrincipalKind.ADMIN_TOKEN, id="t", platform_admin=True)
    assert admin.sees(A)
    assert all(admin.can(scope, A) and admin.can(scope) for scope in SCOPES)
    assert admin.visible_tenants is None


def test_a_token_never_exceeds_its_owner() -> None:
    token = user({A: Role.MEMBER}, ["credentials:write", "tenants:read"])
    assert token.can("tenants:read", A)
    assert not token.can("credentials:write", A), "the owner is only a member"
    assert not token.can("members:read", A), "not in the token"


def test_a_token_narrowed_to_one_tenant_sees_only_that_tenant() -> None:
    token = user({A: Role.OWNER, B: Role.OWNER}, [f"tenants:read!tenant={A}"])
    assert token.sees(A)
    assert not token.sees(B)
    assert token.can("tenants:read", A)
    assert not token.can("tenants:read", B)
    assert token.visible_tenants == frozenset({A})


def test_a_platform_admins_narrowed_token_lists_only_its_tenants() -> None:
    token = Principal(
        kind=PrincipalKind.API_TOKEN,
        id="t",
        platform_admin=True,
        grants=parse_grants([f"tenants:read!tenant={B}"]),
    )
    assert token.visible_tenants == frozenset({B})
    assert token.sees(B)
    assert not token.sees(A)
    assert not token.can("tenants:create")


@pytest.mark.parametrize(
    ("text", "grant"),
    [
        ("tenants:read", Grant("tenants:read")),
        (f"credentials:write!tenant={A}", Grant("credentials:write", A)),
    ],
)
def test_grants_parse_and_print_back(text: str, grant: Grant) -> None:
    assert parse_grant(text) == grant
    assert str(grant) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tenants:fly", "unknown scope"),
        ("tenants:read!user=x", "narrow a scope"),
        ("tenants:read!tenant=", "narrow a scope"),
        ("users:admin!tenant=x", "cannot be narrowed"),
    ],
)
def test_bad_grants_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_grant(text)
    assert message in caught.value.detail
