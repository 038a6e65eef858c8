"""A tenant's own model names (aliases) and fallback chains, checked before they are kept.

They are the tenant's desired spec: kept on its row, delivered in its gateway's bundle
(``model_aliases``, ``model_fallbacks``), and resolved there by the model router
(:mod:`tenant_gateway.models.router`). What is checked here is what would otherwise only
fail at call time: names, sizes, and aliases that lead back to themselves.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

from control_plane.errors import InvalidInputError

MAX_ALIASES = 64
MAX_CHAINS = 64
MAX_FALLBACKS = 5
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,254}")

ModelName = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class ModelRoutes(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``PUT`` and ``GET /api/v1/tenants/{id}/model-routes``."""

    aliases: dict[ModelName, ModelName] = msgspec.field(default_factory=dict)
    """The tenant's names for models: ``{"default": "byok/openai/gpt-4o"}``."""
    fallbacks: dict[ModelName, list[ModelName]] = msgspec.field(default_factory=dict)
    """Per model name (or alias), what to try in turn when it fails:
    ``{"default": ["llama-3.1-8b"]}``."""


def _name(value: str, where: str) -> None:
    if not _MODEL_NAME.fullmatch(value):
        raise InvalidInputError(
            f"{where}: {value!r} is not a model name (letters, digits and . _ : / @ + -, "
            "starting with a letter or digit)"
        )


def check_routes(routes: ModelRoutes) -> ModelRoutes:
    """``routes`` if the gateway can use them; else :class:`InvalidInputError` saying why."""
    if len(routes.aliases) > MAX_ALIASES:
        raise InvalidInputError(f"aliases: at most {MAX_ALIASES} (got {len(routes.aliases)})")
    if len(routes.fallbacks) > MAX_CHAINS:
        raise InvalidInputError(f"fallbacks: at most {MAX_CHAINS} (got {len(routes.fallbacks)})")
    for alias, target in routes.aliases.items():
        _name(alias, "aliases")
        _name(target, f"aliases.{alias}")
        if alias.startswith("byok/"):
            raise InvalidInputError(
                f"aliases: {alias!r} starts with byok/, which names the tenant's own keys' models"
            )
    for alias in routes.aliases:
        seen = [alias]
        current = alias
        while current in routes.aliases:
            current = routes.aliases[current]
            if current in seen:
                raise InvalidInputError(
                    f"aliases: {' -> '.join([*seen, current])} leads back to itself"
                )
            seen.append(current)
    for model, chain in routes.fallbacks.items():
        _name(model, "fallbacks")
        if len(chain) > MAX_FALLBACKS:
            raise InvalidInputError(
                f"fallbacks.{model}: at most {MAX_FALLBACKS} models (got {len(chain)})"
            )
        for index, fallback in enumerate(chain):
            _name(fallback, f"fallbacks.{model}[{index}]")
        if model in chain:
            raise InvalidInputError(f"fallbacks.{model}: a model cannot fall back to itself")
    return routes


def routes_of(stored: dict[str, Any] | None) -> ModelRoutes:
    """The routes kept on a tenant row (tolerant of rows written before they existed)."""
    return msgspec.convert(stored or {}, ModelRoutes)
