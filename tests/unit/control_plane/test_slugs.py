"""Slugs are DNS labels (RFC 1123): they name processes, volumes, pods and hostnames."""

import pytest

from control_plane.errors import InvalidInputError
from control_plane.tenants.slugs import validate_slug


@pytest.mark.parametrize("slug", ["acme", "a", "a1", "acme-corp", "0day", "x" * 63, "a-b-c-9"])
def test_valid_slugs_pass(slug: str) -> None:
    assert validate_slug(slug) == slug


@pytest.mark.parametrize(
    ("slug", "reason"),
    [
        ("", "must not be empty"),
        ("x" * 64, "at most 63 characters"),
        ("Acme", "not a DNS label"),
        ("-acme", "not a DNS label"),
        ("acme-", "not a DNS label"),
        ("ac_me", "not a DNS label"),
        ("ac.me", "not a DNS label"),
        ("acmé", "not a DNS label"),
        ("ac me", "not a DNS label"),
        ("admin", "reserved"),
    ],
)
def test_invalid_slugs_say_why(slug: str, reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        validate_slug(slug)
