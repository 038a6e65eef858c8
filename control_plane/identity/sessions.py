"""Login sessions: access tokens plus refresh tokens that rotate, with reuse detection.

Logging in opens a session (a refresh-token *family*) and hands out an access token and a
refresh token. Refreshing marks the presented refresh token used and hands out a new pair.
Presenting a refresh token that was already used means it was copied: the whole session is
revoked (every refresh token of the family, and the access tokens naming it), and the
caller is told so. Logging out revokes the session.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane import audit
from control_plane.db.engine import Database
from control_plane.db.models import AuthSessionRow, RefreshTokenRow, UserRow
from control_plane.db.values import aware, new_id, utcnow
from control_plane.errors import AuthenticationError
from control_plane.identity.access_tokens import AccessTokens
from control_plane.identity.throttle import LoginThrottle
from control_plane.identity.users import UserService
from control_plane.vault.digests import TokenDigests

REFRESH_PREFIX = "tnt_rt_"


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: str
    password: str


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    refresh_token: str


class TokenPair(msgspec.Struct, kw_only=True):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 (the OAuth token type)


class SessionService:
    def __init__(
        self,
        db: Database,
        users: UserService,
        access: AccessTokens,
        digests: TokenDigests,
        throttle: LoginThrottle,
        *,
        refresh_ttl: float = 30 * 86400.0,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.users = users
        self.access = access
        self.digests = digests
        self.throttle = throttle
        self.refresh_ttl = refresh_ttl
        self.now = now

    async def login(self, data: LoginRequest, address: str) -> TokenPair:
        reservation = await self.throttle.reserve(data.email.strip().lower(), address)
        user_id = await self.users.check_password(data.email, data.password)
        if user_id is None:
            async with self.db.transaction() as session:
                audit.record(
                    session, "auth.login", outcome="denied", email=data.email[:320], address=address
                )
            raise AuthenticationError("email or password is wrong")
        await self.throttle.succeeded(reservation)
        now = self.now()
        session_id = new_id()
        refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
        async with self.db.transaction() as session:
            session.add(
                AuthSessionRow(
                    id=session_id,
                    user_id=user_id,
                    created_at=now,
                    expires_at=now + timedelta(seconds=self.refresh_ttl),
                    revoked_at=None,
                    revoked_reason=None,
                )
            )
            await session.flush()
            self._add_refresh(session, session_id, refresh, now)
            with audit.acting(audit.Actor("user", user_id, audit.current_actor().request_id)):
                audit.record(session, "auth.login", target=session_id, address=address)
        return self._pair(user_id, session_id, refresh)

    async def refresh(self, data: RefreshRequest) -> TokenPair:
        digest = self.digests.digest(data.refresh_token.strip())
        now = self.now()
        async with self.db.transaction() as session:
            token = await session.scalar(
                select(RefreshTokenRow).where(RefreshTokenRow.digest == digest).with_for_update()
            )
            if token is None:
                raise AuthenticationError("the refresh token is not valid")
            login = await session.get(AuthSessionRow, token.session_id, with_for_update=True)
            user = await session.get(UserRow, login.user_id) if login is not None else None
            if login is None or user is None:
                raise AuthenticationError("the refresh token is not valid")
            if login.revoked_at is not None:
                raise AuthenticationError("the session has ended; log in again")
            if aware(login.expires_at) <= now:
                raise AuthenticationError("the session has expired; log in again")
            if user.disabled_at is not None:
                raise AuthenticationError("the account is disabled")
            actor = audit.Actor("user", user.id, audit.current_actor().request_id)
            if token.used_at is not None:
                login.revoked_at, login.revoked_reason = now, "refresh token reused"
                with audit.acting(actor):
                    audit.record(session, "auth.refresh_reused", target=login.id, outcome="denied")
                reused = True
            else:
                # Only one of two concurrent refreshes with the same token wins this update.
                claimed = await session.execute(
                    update(RefreshTokenRow)
                    .where(RefreshTokenRow.id == token.id, RefreshTokenRow.used_at.is_(None))
                    .values(used_at=now)
                    .execution_options(synchronize_session=False)
                )
                if getattr(claimed, "rowcount", 0) != 1:
                    raise AuthenticationError("the refresh token was just used")
                reused = False
                refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
                self._add_refresh(session, login.id, refresh, now)
                with audit.acting(actor):
                    audit.record(session, "auth.refresh", target=login.id)
                user_id, session_id = user.id, login.id
        if reused:
            raise AuthenticationError(
                "this refresh token was already used: the session is revoked; log in again"
            )
        return self._pair(user_id, session_id, refresh)

    async def logout(self, session_id: str) -> None:
        async with self.db.transaction() as session:
            login = await session.get(AuthSessionRow, session_id, with_for_update=True)
            if login is not None and login.revoked_at is None:
                login.revoked_at, login.revoked_reason = self.now(), "logout"
                audit.record(session, "auth.logout", target=session_id)

    async def active(self, session_id: str, user_id: str) -> bool:
        async with self.db.transaction() as session:
            login = await session.get(AuthSessionRow, session_id)
        return (
            login is not None
            and login.user_id == user_id
            and login.revoked_at is None
            and aware(login.expires_at) > self.now()
        )

    def _add_refresh(
        self, session: AsyncSession, session_id: str, value: str, now: datetime
    ) -> None:
        session.add(
            RefreshTokenRow(
                id=new_id(),
                session_id=session_id,
                digest=self.digests.digest(value),
                created_at=now,
                used_at=None,
            )
        )

    def _pair(self, user_id: str, session_id: str, refresh: str) -> TokenPair:
        return TokenPair(
            access_token=self.access.issue(user_id, session_id),
            refresh_token=refresh,
            expires_in=int(self.access.ttl),
        )
