"""From an ``Authorization`` header to a :class:`~control_plane.identity.scopes.Principal`.

Three kinds of bearer credential, told apart by their shape:

* ``tnt_admin_…``: a platform admin token (the first one is made by ``tenantry up``);
* ``tnt_pat_…``: a user's API token, with the scopes written into it;
* anything else: a JWT access token of a logged-in user.

Rights are read from current data on every request (roles, platform admin flag, revoked
sessions and tokens), so a removed member, a logged-out session or a revoked token loses
access at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from control_plane import audit
from control_plane.db.engine import Database
from control_plane.db.models import AuthSessionRow, MembershipRow, UserRow
from control_plane.db.values import aware, utcnow
from control_plane.errors import AuthenticationError
from control_plane.identity.access_tokens import AccessTokens
from control_plane.identity.admin_tokens import TOKEN_PREFIX as ADMIN_PREFIX
from control_plane.identity.admin_tokens import AdminTokens
from control_plane.identity.api_tokens import TOKEN_PREFIX as API_PREFIX
from control_plane.identity.api_tokens import ApiTokenService
from control_plane.identity.scopes import Grant, Principal, PrincipalKind, Role, parse_grants


def bearer(authorization: str | None) -> str:
    """The token of ``Authorization: Bearer <token>``, or AuthenticationError."""
    if not authorization:
        raise AuthenticationError("missing Authorization header; send 'Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("Authorization must be 'Bearer <token>'")
    return token


class Authenticator:
    def __init__(
        self,
        db: Database,
        admin_tokens: AdminTokens,
        access: AccessTokens,
        api_tokens: ApiTokenService,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.admin_tokens = admin_tokens
        self.access = access
        self.api_tokens = api_tokens
        self.now = now

    async def authenticate(self, authorization: str | None) -> Principal:
        token = bearer(authorization)
        if token.startswith(ADMIN_PREFIX):
            token_id = await self.admin_tokens.verify(f"Bearer {token}")
            return Principal(kind=PrincipalKind.ADMIN_TOKEN, id=token_id, platform_admin=True)
        if token.startswith(API_PREFIX):
            owner = await self.api_tokens.owner_of(token)
            return await self._user(
                owner.user_id,
                kind=PrincipalKind.API_TOKEN,
                grants=parse_grants(owner.scopes),
                token_id=owner.token_id,
            )
        claims = self.access.verify(token)
        return await self._user(claims.user_id, session_id=claims.session_id)

    async def _user(
        self,
        user_id: str,
        *,
        kind: PrincipalKind = PrincipalKind.USER,
        grants: frozenset[Grant] | None = None,
        token_id: str | None = None,
        session_id: str | None = None,
    ) -> Principal:
        # The platform log names whom this cross-tenant read is for.
        actor = audit.Actor(str(kind), token_id or user_id, audit.current_actor().request_id)
        with audit.acting(actor):
            async with self.db.transaction(platform="authenticate: load memberships") as session:
                user = await session.get(UserRow, user_id)
                if user is None or user.disabled_at is not None:
                    raise AuthenticationError("the account does not exist or is disabled")
                if session_id is not None:
                    login = await session.get(AuthSessionRow, session_id)
                    if login is None or login.user_id != user_id or login.revoked_at is not None:
                        raise AuthenticationError("the session has ended; log in again")
                    if aware(login.expires_at) <= self.now():
                        raise AuthenticationError("the session has expired; log in again")
                rows = await session.execute(
                    select(MembershipRow.tenant_id, MembershipRow.role).where(
                        MembershipRow.user_id == user_id
                    )
                )
                roles = {tenant_id: Role(role) for tenant_id, role in rows}
        return Principal(
            kind=kind,
            id=token_id or user_id,
            user_id=user_id,
            platform_admin=user.platform_admin,
            roles=roles,
            grants=grants,
            token_id=token_id,
            session_id=session_id,
        )
