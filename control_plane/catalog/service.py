"""The catalog's rules: what a valid entry is, who may use it, and telling gateways of changes.

Entries are installation-wide rows (no tenant owns them), read and written in transactions
that name no tenant. Every change is audited in its own transaction and then reported to
``on_change``, which re-reconciles the running tenants so their gateways see it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import msgspec
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane import audit
from control_plane.catalog.schemas import (
    AvailableModel,
    PlatformModelCreate,
    PlatformModelRead,
    PlatformModelUpdate,
)
from control_plane.db.engine import Database
from control_plane.db.models import PlatformModelRow
from control_plane.db.values import aware, new_id, utcnow
from control_plane.errors import ConflictError, InvalidInputError, NotFoundError
from tenant_gateway.contract import PlatformModel

CatalogListener = Callable[[], Awaitable[None]]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_FIELDS = tuple(PlatformModelUpdate.__struct_fields__)


async def _unchanged() -> None:
    return None


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"model name {name!r}: use 1-128 letters, digits, '.', '_', ':' or '-', starting "
            "with a letter or digit (no '/': 'byok/...' names are the tenants' own models)"
        )
    return name


def check_base_url(url: str) -> str:
    """An http(s) base URL ending in ``/v1``, without credentials, query or fragment."""
    example = "like http://vllm:8000/v1"
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"base_url {url!r} is not an http(s) URL with a host ({example})")
    if parts.username is not None or parts.password is not None:
        raise InvalidInputError("base_url must not carry credentials")
    if parts.query or parts.fragment:
        raise InvalidInputError(f"base_url {url!r} must have no query or fragment ({example})")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        raise InvalidInputError(
            f"base_url {url!r} must be the OpenAI-compatible base ending in /v1 ({example})"
        )
    return f"{parts.scheme}://{parts.netloc}{path}"


def _read(row: PlatformModelRow) -> PlatformModelRead:
    return PlatformModelRead(
        id=row.id,
        name=row.name,
        base_url=row.base_url,
        served_model_name=row.served_model_name,
        context_length=row.context_length,
        input_price_micros=row.input_price_micros,
        output_price_micros=row.output_price_micros,
        enabled=row.enabled,
        plans=list(row.plans or []),
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
    )


def allows(row: PlatformModelRow, plan: str) -> bool:
    """Whether a tenant on ``plan`` may use the entry now."""
    return row.enabled and (not row.plans or plan in row.plans)


class ModelCatalog:
    def __init__(
        self,
        db: Database,
        *,
        plans: Collection[str],
        on_change: CatalogListener = _unchanged,
    ) -> None:
        self.db = db
        self.plans = tuple(plans)
        """The plans tenants can be on; an entry naming another is refused."""
        self.on_change = on_change

    def _check_plans(self, plans: list[str]) -> list[str]:
        unknown = [plan for plan in plans if plan not in self.plans]
        if unknown:
            raise InvalidInputError(
                f"unknown plan(s) {', '.join(map(repr, unknown))}; "
                f"choose from {', '.join(self.plans)} (or none for every plan)"
            )
        return list(dict.fromkeys(plans))

    # -- platform admins -------------------------------------------------------------------

    async def create(self, data: PlatformModelCreate) -> PlatformModelRead:
        now = utcnow()
        row = PlatformModelRow(
            id=new_id(),
            name=check_name(data.name),
            base_url=check_base_url(data.base_url),
            served_model_name=data.served_model_name,
            context_length=data.context_length,
            input_price_micros=data.input_price_micros,
            output_price_micros=data.output_price_micros,
            enabled=data.enabled,
            plans=self._check_plans(data.plans),
            created_at=now,
            updated_at=now,
        )
        async with self._writing(row.name) as session:
            await self._name_free(session, row.name)
            session.add(row)
            await session.flush()
            audit.record(session, "model.create", target=row.id, name=row.name)
        await self.on_change()
        return _read(row)

    async def list_all(self) -> list[PlatformModelRead]:
        async with self.db.transaction() as session:
            rows = await session.scalars(select(PlatformModelRow).order_by(PlatformModelRow.name))
            return [_read(row) for row in rows]

    async def get(self, ref: str) -> PlatformModelRead:
        async with self.db.transaction() as session:
            return _read(await self._find(session, ref))

    async def update(self, ref: str, data: PlatformModelUpdate) -> PlatformModelRead:
        changes = self._checked_changes(data)
        name = changes.get("name")
        async with self._writing(str(name or ref)) as session:
            row = await self._find(session, ref)
            if isinstance(name, str) and name != row.name:
                await self._name_free(session, name)
            changed = sorted(k for k, v in changes.items() if getattr(row, k) != v)
            for field, value in changes.items():
                setattr(row, field, value)
            if changed:
                row.updated_at = utcnow()
                await session.flush()
                audit.record(session, "model.update", target=row.id, name=row.name, fields=changed)
            result = _read(row)
        if changed:
            await self.on_change()
        return result

    async def delete(self, ref: str) -> None:
        async with self.db.transaction() as session:
            row = await self._find(session, ref)
            await session.delete(row)
            audit.record(session, "model.delete", target=row.id, name=row.name)
        await self.on_change()

    # -- tenants and their gateways --------------------------------------------------------

    async def available(self, plan: str) -> list[AvailableModel]:
        """What a tenant on ``plan`` may call, for its people."""
        return [
            AvailableModel(
                name=row.name,
                context_length=row.context_length,
                input_price_micros=row.input_price_micros,
                output_price_micros=row.output_price_micros,
            )
            for row in await self._allowed(plan)
        ]

    async def for_gateway(self, plan: str) -> list[PlatformModel] | None:
        """What a tenant on ``plan`` may call, for its gateway's bundle; None while the
        catalog is empty (the gateway then offers what the fleet itself lists)."""
        async with self.db.transaction() as session:
            rows = list(
                await session.scalars(select(PlatformModelRow).order_by(PlatformModelRow.name))
            )
        if not rows:
            return None
        return [
            PlatformModel(
                name=row.name,
                base_url=row.base_url,
                served_model_name=row.served_model_name,
                context_length=row.context_length,
            )
            for row in rows
            if allows(row, plan)
        ]

    # -- internals -------------------------------------------------------------------------

    async def _allowed(self, plan: str) -> list[PlatformModelRow]:
        async with self.db.transaction() as session:
            rows = await session.scalars(select(PlatformModelRow).order_by(PlatformModelRow.name))
            return [row for row in rows if allows(row, plan)]

    def _checked_changes(self, data: PlatformModelUpdate) -> dict[str, object]:
        changes = {
            field: getattr(data, field)
            for field in _FIELDS
            if getattr(data, field) is not msgspec.UNSET
        }
        if "name" in changes:
            changes["name"] = check_name(str(changes["name"]))
        if "base_url" in changes:
            changes["base_url"] = check_base_url(str(changes["base_url"]))
        if "plans" in changes:
            assert isinstance(data.plans, list)
            changes["plans"] = self._check_plans(data.plans)
        return changes

    @asynccontextmanager
    async def _writing(self, name: str) -> AsyncIterator[AsyncSession]:
        """A transaction in which a unique-name race ends as the same 409 as a plain check."""
        try:
            async with self.db.transaction() as session:
                yield session
        except IntegrityError:
            raise ConflictError(f"a platform model named {name!r} exists") from None

    @staticmethod
    async def _name_free(session: AsyncSession, name: str) -> None:
        taken = await session.scalar(
            select(PlatformModelRow.id).where(PlatformModelRow.name == name)
        )
        if taken is not None:
            raise ConflictError(f"a platform model named {name!r} exists")

    @staticmethod
    async def _find(session: AsyncSession, ref: str) -> PlatformModelRow:
        row = await session.scalar(
            select(PlatformModelRow).where(
                or_(PlatformModelRow.id == ref, PlatformModelRow.name == ref)
            )
        )
        if row is None:
            raise NotFoundError(f"no platform model {ref!r} in the catalog")
        return row
