"""Controllers of people and their credentials: login, refresh, logout, accounts, API tokens."""

from __future__ import annotations

import ipaddress
from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from control_plane.api.authz import AUTHENTICATED, PUBLIC, SCOPE, principal_of
from control_plane.errors import PermissionDenied
from control_plane.identity.api_tokens import (
    ApiTokenCreate,
    ApiTokenRead,
    ApiTokenService,
    CreatedApiToken,
)
from control_plane.identity.scopes import Principal
from control_plane.identity.sessions import LoginRequest, RefreshRequest, SessionService, TokenPair
from control_plane.identity.users import Me, UserCreate, UserRead, UserService
from control_plane.settings import Settings


def client_address(request: Request[Any, Any, Any], trusted: tuple[str, ...]) -> str:
    """The caller's address: the direct peer, or — when the peer is a trusted proxy — the
    nearest address in ``X-Forwarded-For`` that is not a trusted proxy."""
    peer = request.client.host if request.client else "unknown"
    if not trusted:
        return peer
    networks = [ipaddress.ip_network(n) for n in trusted]

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    if not is_trusted(peer):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return peer


def _user_id(principal: Principal) -> str:
    if principal.user_id is None:
        raise PermissionDenied("this is for a logged-in user, not an admin token")
    return principal.user_id


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]

    @post("/login", status_code=HTTP_200_OK, opt={SCOPE: PUBLIC})
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LoginRequest],
        sessions: NamedDependency[SessionService],
    ) -> TokenPair:
        """Email and password for a 15-minute access token and a refresh token.

        Attempts are limited per account and per client address (429 with Retry-After)."""
        settings: Settings = request.app.state.settings
        return await sessions.login(data, client_address(request, settings.trusted_proxies))

    @post("/refresh", status_code=HTTP_200_OK, opt={SCOPE: PUBLIC})
    async def refresh(
        self, data: JSONBody[RefreshRequest], sessions: NamedDependency[SessionService]
    ) -> TokenPair:
        """A new token pair for a refresh token, which is used up; using one twice ends the
        whole session."""
        return await sessions.refresh(data)

    @post("/logout", status_code=HTTP_204_NO_CONTENT, opt={SCOPE: AUTHENTICATED})
    async def logout(
        self, request: Request[Any, Any, Any], sessions: NamedDependency[SessionService]
    ) -> None:
        """End the caller's session: its refresh and access tokens stop working."""
        principal = principal_of(request)
        if principal.session_id is None:
            raise PermissionDenied("only a logged-in session can log out; revoke tokens instead")
        await sessions.logout(principal.session_id)


class UserController(Controller):
    path = "/api/v1/users"
    tags = ["users"]

    @post("/", status_code=HTTP_201_CREATED, opt={SCOPE: "users:admin"})
    async def create_user(
        self, data: JSONBody[UserCreate], users: NamedDependency[UserService]
    ) -> UserRead:
        """Create an account (platform admins)."""
        return await users.create(data)

    @get("/me", opt={SCOPE: AUTHENTICATED})
    async def me(self, request: Request[Any, Any, Any], users: NamedDependency[UserService]) -> Me:
        """The caller's account and their role in each tenant."""
        return await users.me(_user_id(principal_of(request)))


class ApiTokenController(Controller):
    path = "/api/v1/tokens"
    tags = ["users"]

    @post("/", status_code=HTTP_201_CREATED, opt={SCOPE: AUTHENTICATED})
    async def create_token(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ApiTokenCreate],
        api_tokens: NamedDependency[ApiTokenService],
    ) -> CreatedApiToken:
        """An API token with the given scopes (each ``scope`` or ``scope!tenant=<id>``); the
        value is in this response only."""
        return await api_tokens.create(principal_of(request), data)

    @get("/", opt={SCOPE: AUTHENTICATED})
    async def list_tokens(
        self, request: Request[Any, Any, Any], api_tokens: NamedDependency[ApiTokenService]
    ) -> list[ApiTokenRead]:
        """The caller's API tokens, masked."""
        return await api_tokens.list_tokens(_user_id(principal_of(request)))

    @delete("/{token_id:str}", status_code=HTTP_204_NO_CONTENT, opt={SCOPE: AUTHENTICATED})
    async def revoke_token(
        self,
        request: Request[Any, Any, Any],
        token_id: FromPath[str],
        api_tokens: NamedDependency[ApiTokenService],
    ) -> None:
        """Revoke one of the caller's API tokens."""
        await api_tokens.revoke(_user_id(principal_of(request)), token_id)
