"""Wire shapes of the tenant API (msgspec). Input Structs reject unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from control_plane.tenants.states import TenantState

PLANS = ("free", "starter", "pro", "enterprise")

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Plan = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for request bodies: an unknown field is an error, not silently dropped."""


class TenantCreate(Input):
    slug: str
    name: Name | None = None
    plan: Plan = "free"


class TenantUpdate(Input):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    plan: Plan | msgspec.UnsetType = msgspec.UNSET
    suspended: bool | msgspec.UnsetType = msgspec.UNSET


class TenantRead(msgspec.Struct, kw_only=True):
    id: str
    slug: str
    name: str
    plan: str
    state: TenantState
    endpoint: str | None
    created_at: datetime
    updated_at: datetime
    generation: int
    observed_generation: int
    reason: str | None
    suspended: bool


class CreatedGatewayKey(msgspec.Struct, kw_only=True):
    """A gateway key as returned once, on creation: the only time ``key`` is shown."""

    id: str
    name: str
    key: str
    hint: str
    created_at: datetime


class TenantCreated(TenantRead, kw_only=True):
    """The create response: the tenant plus its first gateway key (absent on a replay)."""

    gateway_key: CreatedGatewayKey | None = None


class TenantPage(msgspec.Struct, kw_only=True):
    items: list[TenantRead]
    next_cursor: str | None


class TenantEventRead(msgspec.Struct, kw_only=True):
    id: int
    tenant_id: str
    type: str
    message: str
    data: dict[str, Any]
    created_at: datetime


class GatewayKeyCreate(Input):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "default"


class GatewayKeyRead(msgspec.Struct, kw_only=True):
    id: str
    name: str
    hint: str
    created_at: datetime
    revoked_at: datetime | None
