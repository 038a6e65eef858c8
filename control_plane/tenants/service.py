"""Tenant rules for the admin API: create, list, read, change and delete tenants."""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from msgspec import UNSET
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane import audit
from control_plane.db.engine import Database
from control_plane.db.models import IdempotencyKeyRow, TenantRow
from control_plane.db.values import aware, new_id, utcnow
from control_plane.errors import ConflictError, InvalidInputError, NotFoundError
from control_plane.tenants import keys
from control_plane.tenants.events import EventSignal, append_event, events_after
from control_plane.tenants.model_routes import ModelRoutes, check_routes, routes_of
from control_plane.tenants.schemas import (
    PLANS,
    TenantCreate,
    TenantCreated,
    TenantEventRead,
    TenantPage,
    TenantRead,
    TenantUpdate,
)
from control_plane.tenants.slugs import validate_slug
from control_plane.tenants.states import TenantState
from control_plane.vault.service import CredentialVault

ChangeListener = Callable[[str], None]

MAX_PAGE = 200


def tenant_read(row: TenantRow) -> TenantRead:
    return TenantRead(
        id=row.id,
        slug=row.slug,
        name=row.name,
        plan=row.plan,
        state=TenantState(row.state),
        endpoint=row.endpoint,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
        generation=row.generation,
        observed_generation=row.observed_generation,
        reason=row.reason,
        suspended=row.suspended,
    )


def _validate_plan(plan: str) -> str:
    if plan not in PLANS:
        raise InvalidInputError(f"unknown plan {plan!r}; choose one of {', '.join(PLANS)}")
    return plan


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def encode_cursor(tenant_id: str) -> str:
    return base64.urlsafe_b64encode(tenant_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        value = ""
    if not _is_uuid(value):
        raise InvalidInputError("cursor is not one this API returned")
    return value


async def find_tenant(session: AsyncSession, ref: str, *, for_update: bool = False) -> TenantRow:
    """A tenant by id, or by the slug of a tenant that is not deleted."""
    query = select(TenantRow)
    if _is_uuid(ref):
        query = query.where(TenantRow.id == ref)
    else:
        query = query.where(TenantRow.slug == ref, TenantRow.state != TenantState.DELETED)
    if for_update:
        # FOR NO KEY UPDATE: the key never changes, so rows that reference the tenant (a
        # credential being stored) may still be written meanwhile; a plain FOR UPDATE
        # would block their foreign-key checks and deadlock with the vault.
        query = query.with_for_update(key_share=True)
    row = await session.scalar(query)
    if row is None:
        raise NotFoundError(f"no tenant {ref!r}")
    return row


class TenantService:
    def __init__(
        self,
        db: Database,
        signal: EventSignal,
        vault: CredentialVault,
        on_change: ChangeListener = lambda _tenant_id: None,
    ) -> None:
        self.db = db
        self.signal = signal
        self.vault = vault
        self.on_change = on_change

    def _changed(self, tenant_id: str) -> None:
        self.signal.publish()
        self.on_change(tenant_id)

    async def create(self, data: TenantCreate, idempotency_key: str | None) -> TenantCreated:
        slug = validate_slug(data.slug)
        plan = _validate_plan(data.plan)
        digest = hashlib.sha256(msgspec.json.encode(data)).hexdigest()
        scoped_key = f"tenants:{idempotency_key}" if idempotency_key else None
        for attempt in (1, 2):
            try:
                created = await self._create_once(data, slug, plan, digest, scoped_key)
            except IntegrityError:
                # A concurrent request won a race for the slug or the idempotency key; a
                # second pass sees its committed row and answers accordingly.
                if attempt == 2:
                    raise ConflictError(f"slug {slug!r} is taken") from None
                continue
            self._changed(created.id)
            return created
        raise AssertionError("unreachable")

    async def _create_once(
        self, data: TenantCreate, slug: str, plan: str, digest: str, scoped_key: str | None
    ) -> TenantCreated:
        async with self.db.transaction(platform="create tenant") as session:
            if scoped_key is not None:
                seen = await session.get(IdempotencyKeyRow, scoped_key)
                if seen is not None:
                    if seen.request_digest != digest:
                        raise ConflictError(
                            "this Idempotency-Key was already used with a different request"
                        )
                    row = await find_tenant(session, seen.tenant_id)
                    return TenantCreated(**msgspec.structs.asdict(tenant_read(row)))
            taken = await session.scalar(
                select(TenantRow.id).where(
                    TenantRow.slug == slug, TenantRow.state != TenantState.DELETED
                )
            )
            if taken is not None:
                raise ConflictError(f"slug {slug!r} is taken")
            now = utcnow()
            row = TenantRow(
                id=new_id(),
                slug=slug,
                name=data.name or slug,
                plan=plan,
                state=TenantState.PROVISIONING,
                endpoint=None,
                reason=None,
                suspended=False,
                delete_requested=False,
                generation=1,
                observed_generation=0,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            await session.flush()
            self.vault.add_tenant_key(session, row.id)
            first_key = keys.add_key(session, self.vault.digests, row.id, "default")
            append_event(session, row.id, "tenant.created", f"tenant {slug} created", plan=plan)
            audit.record(session, "tenant.create", tenant_id=row.id, target=slug, plan=plan)
            if scoped_key is not None:
                session.add(
                    IdempotencyKeyRow(
                        key=scoped_key, request_digest=digest, tenant_id=row.id, created_at=now
                    )
                )
            await session.flush()
            return TenantCreated(**msgspec.structs.asdict(tenant_read(row)), gateway_key=first_key)

    async def page(
        self,
        state: TenantState | None,
        limit: int,
        cursor: str | None,
        visible: frozenset[str] | None = None,
    ) -> TenantPage:
        """A page of tenants; ``visible`` limits it to those ids (None: every tenant)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE}")
        query = select(TenantRow).order_by(TenantRow.id).limit(limit + 1)
        if state is not None:
            query = query.where(TenantRow.state == state)
        else:
            query = query.where(TenantRow.state != TenantState.DELETED)
        if cursor:
            query = query.where(TenantRow.id > decode_cursor(cursor))
        if visible is not None:
            query = query.where(TenantRow.id.in_(sorted(visible)))
        scope: dict[str, Any] = (
            {"platform": "list every tenant"} if visible is None else {"tenant": visible}
        )
        async with self.db.transaction(**scope) as session:
            rows = list(await session.scalars(query))
        more = len(rows) > limit
        items = [tenant_read(row) for row in rows[:limit]]
        return TenantPage(items=items, next_cursor=encode_cursor(items[-1].id) if more else None)

    async def get(self, tenant_id: str) -> TenantRead:
        async with self.db.transaction(tenant=tenant_id) as session:
            return tenant_read(await find_tenant(session, tenant_id))

    async def update(self, tenant_id: str, data: TenantUpdate) -> TenantRead:
        async with self.db.transaction(tenant=tenant_id) as session:
            row = await find_tenant(session, tenant_id, for_update=True)
            if row.delete_requested:
                raise ConflictError(f"tenant {row.slug} is being deleted")
            spec_changed = False
            if data.name is not msgspec.UNSET and data.name != row.name:
                row.name = data.name
            if data.plan is not msgspec.UNSET and data.plan != row.plan:
                row.plan = _validate_plan(data.plan)
                spec_changed = True
                append_event(session, row.id, "tenant.plan_changed", f"plan is now {row.plan}")
            if data.suspended is not msgspec.UNSET and data.suspended != row.suspended:
                row.suspended = data.suspended
                spec_changed = True
                if data.suspended:
                    append_event(session, row.id, "tenant.suspend_requested", "suspend requested")
                else:
                    append_event(session, row.id, "tenant.resume_requested", "resume requested")
            if spec_changed:
                row.generation += 1
            row.updated_at = utcnow()
            changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not UNSET}
            audit.record(session, "tenant.update", tenant_id=row.id, target=row.slug, **changes)
            result = tenant_read(row)
        if spec_changed:
            self._changed(result.id)
        return result

    async def model_routes(self, tenant_id: str) -> ModelRoutes:
        async with self.db.transaction(tenant=tenant_id) as session:
            return routes_of((await find_tenant(session, tenant_id)).model_routes)

    async def set_model_routes(self, tenant_id: str, routes: ModelRoutes) -> ModelRoutes:
        """Replace the tenant's aliases and fallbacks; its gateway gets them with its next
        bundle."""
        check_routes(routes)
        stored = msgspec.to_builtins(routes)
        async with self.db.transaction(tenant=tenant_id) as session:
            row = await find_tenant(session, tenant_id, for_update=True)
            if row.delete_requested:
                raise ConflictError(f"tenant {row.slug} is being deleted")
            changed = routes_of(row.model_routes) != routes
            if changed:
                row.model_routes = stored
                row.generation += 1
                row.updated_at = utcnow()
                append_event(
                    session,
                    row.id,
                    "tenant.model_routes_changed",
                    f"{len(routes.aliases)} alias(es), {len(routes.fallbacks)} fallback chain(s)",
                )
            audit.record(
                session, "tenant.model_routes", tenant_id=row.id, target=row.slug, **stored
            )
        if changed:
            self._changed(tenant_id)
        return routes

    async def delete(self, tenant_id: str) -> TenantRead:
        async with self.db.transaction(tenant=tenant_id) as session:
            row = await find_tenant(session, tenant_id, for_update=True)
            if not row.delete_requested:
                row.delete_requested = True
                row.state = TenantState.DELETING
                row.reason = None
                row.generation += 1
                # Crypto-shredding: from now on no ciphertext of this tenant can be read.
                await self.vault.destroy_tenant_key(session, row.id)
                row.updated_at = utcnow()
                append_event(session, row.id, "tenant.deleting", "deletion requested")
                audit.record(session, "tenant.delete", tenant_id=row.id, target=row.slug)
            result = tenant_read(row)
        self._changed(result.id)
        return result

    async def events(
        self, tenant_id: str, after: int = 0, limit: int = 500
    ) -> list[TenantEventRead]:
        async with self.db.transaction(tenant=tenant_id) as session:
            row = await find_tenant(session, tenant_id)
            return await events_after(session, row.id, after, limit)

    async def resolve_id(self, ref: str) -> str:
        """The id of the tenant ``ref`` names (an id or a slug), for any caller."""
        async with self.db.transaction(platform="resolve a tenant reference") as session:
            return (await find_tenant(session, ref)).id

    async def resolve_for(self, ref: str, sees: Callable[[str], bool]) -> str:
        """The id of the tenant ``ref`` names if ``sees`` it; a tenant the caller may not
        see is reported exactly like one that does not exist."""
        try:
            tenant_id = await self.resolve_id(ref)
        except NotFoundError:
            raise NotFoundError(f"no tenant {ref!r}") from None
        if not sees(tenant_id):
            raise NotFoundError(f"no tenant {ref!r}")
        return tenant_id
