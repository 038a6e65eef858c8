"""Tenant slugs: DNS labels (RFC 1123), because they name pods, volumes and hostnames."""

from __future__ import annotations

import re

from control_plane.errors import InvalidInputError

_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
RESERVED = frozenset({"api", "admin", "www", "system", "default", "kube-system", "tenantry"})


def validate_slug(slug: str) -> str:
    """Return ``slug`` if it is a usable DNS label, else raise with the reason."""
    if not slug:
        raise InvalidInputError("slug must not be empty")
    if len(slug) > 63:
        raise InvalidInputError(f"slug must be at most 63 characters, got {len(slug)}")
    if _LABEL.fullmatch(slug) is None:
        raise InvalidInputError(
            f"slug {slug!r} is not a DNS label: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    if slug in RESERVED:
        raise InvalidInputError(f"slug {slug!r} is reserved")
    return slug
