"""The login throttle's idea of the caller's address, with and without trusted proxies."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Request

from control_plane.api.auth import client_address


def request(peer: str, forwarded: str | None = None) -> Request[Any, Any, Any]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope: Any = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/auth/login",
        "headers": headers,
        "client": (peer, 40000),
        "query_string": b"",
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.7", "198.51.100.1", (), "203.0.113.7"),  # no proxy trusted: header ignored
        ("10.0.0.5", "198.51.100.1", ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.5", "6.6.6.6, 198.51.100.1, 10.0.0.9", ("10.0.0.0/8",), "198.51.100.1"),
        ("203.0.113.7", "198.51.100.1", ("10.0.0.0/8",), "203.0.113.7"),  # untrusted peer
        ("10.0.0.5", None, ("10.0.0.0/8",), "10.0.0.5"),
        ("10.0.0.5", "not-an-ip", ("10.0.0.0/8",), "not-an-ip"),
    ],
)
def test_client_address(
    peer: str, forwarded: str | None, trusted: tuple[str, ...], expected: str
) -> None:
    assert client_address(request(peer, forwarded), trusted) == expected
