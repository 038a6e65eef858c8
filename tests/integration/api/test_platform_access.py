"""Platform mode, the one path past tenant isolation, is accounted for (SQLite and
PostgreSQL): every platform-mode transaction that serves a request leaves one line on the
``control_plane.platform`` logger with who, why, the request id and the outcome; a change
made in platform mode says why in its audit entry; the control plane's own platform work is
logged at debug level."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from control_plane.cli.logs import JsonLines
from control_plane.db.engine import Database
from tests.integration.api.test_tenants_api import create

PLATFORM_LOGGER = "control_plane.platform"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def platform_lines(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=PLATFORM_LOGGER)
    return caplog


def lines_of(caplog: pytest.LogCaptureFixture, request_id: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == PLATFORM_LOGGER and getattr(r, "request_id", None) == request_id
    ]


def summary(record: logging.LogRecord) -> tuple[Any, ...]:
    return (
        record.levelname,
        getattr(record, "platform_reason", None),
        getattr(record, "actor_type", None),
        getattr(record, "actor_id", None),
        getattr(record, "outcome", None),
    )


async def admin_token_id(client: AsyncTestClient) -> str:
    made = await client.get("/api/v1/audit", params={"action": "admin_token.create"})
    token_id: str = made.json()[0]["target"]
    return token_id


async def test_a_platform_admin_s_read_is_logged(
    client: AsyncTestClient, platform_lines: pytest.LogCaptureFixture
) -> None:
    token_id = await admin_token_id(client)
    answer = await client.get("/api/v1/audit", headers={"X-Request-ID": "req-platform-1"})
    assert answer.status_code == 200
    assert [summary(r) for r in lines_of(platform_lines, "req-platform-1")] == [
        ("INFO", "read the audit log", "admin_token", token_id, "success"),
    ]
    [line] = lines_of(platform_lines, "req-platform-1")
    shown = json.loads(JsonLines().format(line))
    assert {k: shown[k] for k in ("platform_reason", "actor_id", "request_id", "outcome")} == {
        "platform_reason": "read the audit log",
        "actor_id": token_id,
        "request_id": "req-platform-1",
        "outcome": "success",
    }
    assert "req-platform-1" in line.getMessage()
    assert "read the audit log" in line.getMessage()


async def test_each_platform_step_of_a_user_s_request_names_the_user(
    client: AsyncTestClient, platform_lines: pytest.LogCaptureFixture
) -> None:
    await create(client, "acme")
    made = await client.post(
        "/api/v1/users", json={"email": "ann@example.com", "password": PASSWORD}
    )
    ann = made.json()["id"]
    await client.post("/api/v1/tenants/acme/members", json={"email": "ann@example.com"})
    login = await client.post(
        "/api/v1/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
    )
    headers = {
        "Authorization": f"Bearer {login.json()['access_token']}",
        "X-Request-ID": "req-platform-2",
    }
    answer = await client.get("/api/v1/tenants/acme", headers=headers)
    assert answer.status_code == 200, answer.text
    # Authentication reads the user's memberships across tenants and the slug is resolved
    # across tenants; reading the tenant itself is confined to it, and leaves no line.
    assert [summary(r) for r in lines_of(platform_lines, "req-platform-2")] == [
        ("INFO", "authenticate: load memberships", "user", ann, "success"),
        ("INFO", "resolve a tenant reference", "user", ann, "success"),
    ]


async def test_a_failed_platform_transaction_is_logged_as_an_error(
    client: AsyncTestClient, platform_lines: pytest.LogCaptureFixture
) -> None:
    token_id = await admin_token_id(client)
    answer = await client.get("/api/v1/tenants/no-such", headers={"X-Request-ID": "req-platform-3"})
    assert answer.status_code == 404
    [line] = lines_of(platform_lines, "req-platform-3")
    assert summary(line) == ("INFO", "resolve a tenant reference", "admin_token", token_id, "error")
    assert getattr(line, "error", None) == "NotFoundError"


async def test_a_change_made_in_platform_mode_says_why_in_the_audit_log(
    client: AsyncTestClient, platform_lines: pytest.LogCaptureFixture
) -> None:
    client.headers["X-Request-ID"] = "req-platform-4"
    tenant = await create(client, "why")
    await client.patch(f"/api/v1/tenants/{tenant['id']}", json={"name": "Why Inc"})
    entries = (await client.get("/api/v1/audit", params={"tenant": tenant["id"]})).json()
    assert [(e["action"], e["detail"].get("platform_reason")) for e in entries] == [
        ("tenant.create", "create tenant"),
        ("tenant.update", None),
    ]
    reasons = [
        getattr(r, "platform_reason", None) for r in lines_of(platform_lines, "req-platform-4")
    ]
    assert "create tenant" in reasons


async def test_the_control_plane_s_own_platform_work_is_logged_at_debug_level(
    client: AsyncTestClient, platform_lines: pytest.LogCaptureFixture
) -> None:
    db = Database(client.app.state.settings.database_url)
    try:
        async with db.transaction(platform="sweep: count tenants"):
            pass
        with pytest.raises(RuntimeError):
            async with db.transaction(platform="sweep: fail"):
                raise RuntimeError("boom")
    finally:
        await db.close()
    own = [
        r
        for r in platform_lines.records
        if r.name == PLATFORM_LOGGER and "sweep" in getattr(r, "platform_reason", "")
    ]
    assert [(summary(r), getattr(r, "request_id", None)) for r in own] == [
        (("DEBUG", "sweep: count tenants", None, None, "success"), None),
        (("DEBUG", "sweep: fail", None, None, "error"), None),
    ]
