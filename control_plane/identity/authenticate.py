"""From an ``Authorization`` header to a :class:`~control_plane.identity.scopes.Principal`.

Three kinds of bearer credential, told apart by their shape:

* ``tnt_admin_…``: a platform admin token (the first one is made by ``tenantry up``);
* ``tnt_pat_…``: a user's API token, with the scopes written into it;
* anything else: a JWT access token of a logged-in user.

Rights are read from current data on every request (roles, platform admin flag, revoked
sessions and tokens), so a removed member or a revoked token loses access at once.
"""

from __future__ import annotations

from control_plane.errors import AuthenticationError
from control_plane.identity.admin_tokens import TOKEN_PREFIX as ADMIN_PREFIX
from control_plane.identity.admin_tokens import AdminTokens
from control_plane.identity.scopes import Principal, PrincipalKind


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
    def __init__(self, admin_tokens: AdminTokens) -> None:
        self.admin_tokens = admin_tokens

    async def authenticate(self, authorization: str | None) -> Principal:
        token = bearer(authorization)
        if token.startswith(ADMIN_PREFIX):
            token_id = await self.admin_tokens.verify(f"Bearer {token}")
            return Principal(kind=PrincipalKind.ADMIN_TOKEN, id=token_id, platform_admin=True)
        raise AuthenticationError("the token is not valid")
