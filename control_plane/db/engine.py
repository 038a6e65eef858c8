"""The async engine and transactions, with the same behaviour on SQLite and PostgreSQL.

SQLite transactions start with ``BEGIN IMMEDIATE`` so concurrent writers queue on the
database lock (``busy_timeout``) instead of failing when a read turns into a write.

Every transaction says whose rows it may touch. On PostgreSQL that becomes the
transaction-local settings the row-level-security policies read (``SET LOCAL`` through
``set_config(..., true)``):

* ``transaction(tenant=ID)``: ``app.tenant_id`` = ID, so tenant-owned tables show that
  tenant's rows only, whatever the SQL says; ``tenant=[ID, ...]`` (a user's tenants, for a
  list) sets several, comma-separated;
* ``transaction(platform="why")``: ``app.platform`` = ``on`` (and ``app.platform_reason``):
  the explicit cross-tenant path of the reconciler, key rotation and platform admins;
* ``transaction()``: neither, so no tenant-owned row is visible (users, tokens and other
  installation-wide tables only).

SQLite has no row-level security; the service layer enforces the same rules there.

Platform mode is the one path past tenant isolation, so every use of it is accounted for:
each platform transaction, on either database, ends with one line on the
``control_plane.platform`` logger naming the reason, the outcome (``success`` or ``error``)
and whom it worked for (the fields :func:`working_for` was given: actor and request id) —
at ``INFO`` when it served a request, at ``DEBUG`` for the control plane's own sweeps. The
reason is also in the session's ``info`` (:data:`PLATFORM_REASON`), so an audit entry made in
the transaction can say why it crossed tenants.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from control_plane.errors import StorageError

PLATFORM_REASON = "platform_reason"
"""Key of ``session.info`` holding a platform-mode transaction's reason."""

platform_log = logging.getLogger("control_plane.platform")
"""One line per platform-mode transaction (see the module docstring)."""

CallerFields = Mapping[str, str | None]
_NO_CALLER: CallerFields = MappingProxyType({})
_caller: ContextVar[CallerFields] = ContextVar("tenantry_db_caller", default=_NO_CALLER)


def working_for(fields: CallerFields) -> Token[CallerFields]:
    """Name whom this task's transactions work for (``actor_type``, ``actor_id``,
    ``request_id``) in the platform log; the audit context keeps it current."""
    return _caller.set(fields)


def stop_working_for(token: Token[CallerFields]) -> None:
    _caller.reset(token)


def _log_platform_use(reason: str, failure: BaseException | None) -> None:
    caller = _caller.get()
    level = logging.INFO if caller.get("request_id") else logging.DEBUG
    if not platform_log.isEnabledFor(level):
        return
    outcome = "success" if failure is None else "error"
    fields = {name: value for name, value in caller.items() if value is not None}
    fields.update(platform_reason=reason, outcome=outcome)
    if failure is not None:
        fields["error"] = type(failure).__name__
    platform_log.log(
        level,
        "platform mode (%s) for %s %s, request %s: %s",
        reason,
        fields.get("actor_type", "system"),
        fields.get("actor_id", "-"),
        fields.get("request_id", "-"),
        outcome,
        extra=fields,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's begin event issue BEGIN, not the driver.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


async def _scope(
    session: AsyncSession, tenant: str | Collection[str] | None, platform: str | None
) -> None:
    if tenant is None:
        tenants = ""
    elif isinstance(tenant, str):
        tenants = tenant
    else:
        tenants = ",".join(sorted(tenant))
    await session.execute(
        text(
            "SELECT set_config('app.tenant_id', :tenant, true),"
            " set_config('app.platform', :platform, true),"
            " set_config('app.platform_reason', :reason, true)"
        ),
        {
            "tenant": tenants,
            "platform": "on" if platform is not None else "off",
            "reason": platform or "",
        },
    )


class Database:
    """Owns the engine and hands out transactions."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(
        self, *, tenant: str | Collection[str] | None = None, platform: str | None = None
    ) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on error.

        ``tenant`` confines it to one tenant's rows; ``platform`` (a reason) opens every
        tenant's rows, and is logged; at most one of them.
        """
        if tenant is not None and platform is not None:
            raise ValueError("a transaction is for one tenant or for the platform, not both")
        if platform is None:
            async with self._transaction(tenant, None) as session:
                yield session
            return
        try:
            async with self._transaction(None, platform) as session:
                session.info[PLATFORM_REASON] = platform
                yield session
        except BaseException as exc:
            _log_platform_use(platform, exc)
            raise
        _log_platform_use(platform, None)

    @asynccontextmanager
    async def _transaction(
        self, tenant: str | Collection[str] | None, platform: str | None
    ) -> AsyncIterator[AsyncSession]:
        try:
            async with self._sessions() as session, session.begin():
                if not self.is_sqlite:
                    await _scope(session, tenant, platform)
                yield session
        except OperationalError as exc:
            raise StorageError(f"database unavailable: {exc.orig}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StorageError("database connection lost") from exc
            raise

    async def ping(self) -> None:
        async with self.transaction() as session:
            await session.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
