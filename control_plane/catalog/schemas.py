"""Wire shapes of the model catalog (msgspec). Input Structs reject unknown fields.

Prices are integers in micro-dollars per million tokens: ``input_price_micros=150000`` is
$0.15 per million input tokens. Integers keep sums exact; no float ever holds a price.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

Price = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
"""Micro-dollars per million tokens (at most $1,000,000 per million)."""
ContextLength = Annotated[int, msgspec.Meta(ge=1, le=100_000_000)]
ServedName = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for request bodies: an unknown field is an error, not silently dropped."""


class PlatformModelCreate(Input):
    name: str
    """What tenants call it (``model`` in their requests)."""
    base_url: str
    """The OpenAI-compatible base URL serving it, ending in ``/v1``."""
    served_model_name: ServedName | None = None
    """Its name at that server (vLLM's ``--served-model-name``), if not ``name``."""
    context_length: ContextLength | None = None
    input_price_micros: Price = 0
    output_price_micros: Price = 0
    enabled: bool = True
    plans: list[str] = msgspec.field(default_factory=list)
    """Plans that may use it; empty: every plan."""


class PlatformModelUpdate(Input):
    """A change: fields left out stay as they are; ``null`` clears an optional one."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    base_url: str | msgspec.UnsetType = msgspec.UNSET
    served_model_name: ServedName | msgspec.UnsetType | None = msgspec.UNSET
    context_length: ContextLength | msgspec.UnsetType | None = msgspec.UNSET
    input_price_micros: Price | msgspec.UnsetType = msgspec.UNSET
    output_price_micros: Price | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    plans: list[str] | msgspec.UnsetType = msgspec.UNSET


class PlatformModelRead(msgspec.Struct, kw_only=True):
    """A catalog entry as platform admins see it."""

    id: str
    name: str
    base_url: str
    served_model_name: str | None
    context_length: int | None
    input_price_micros: int
    output_price_micros: int
    enabled: bool
    plans: list[str]
    created_at: datetime
    updated_at: datetime


class AvailableModel(msgspec.Struct, kw_only=True):
    """A model as a tenant's people see it: what to ask for and what it costs, not where
    the fleet serves it."""

    name: str
    context_length: int | None
    input_price_micros: int
    output_price_micros: int
