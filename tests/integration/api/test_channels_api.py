"""Pairing chats of the platform Telegram bot with tenants: a tenant asks for a code, the
bot redeems what the chat's user sent (``ChannelDirectory.redeem``, as the bot will call it),
and the chat is bound to the code's tenant only. Codes expire, work once, are never stored
as typed, and wrong ones are throttled per chat. On SQLite and PostgreSQL (as the
application role, under row-level security)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from control_plane.app import create_app
from control_plane.channels.schemas import (
    AlreadyUsed,
    Bound,
    BoundElsewhere,
    Channel,
    Expired,
    RateLimited,
    UnknownCode,
)
from control_plane.channels.service import REDEEM_LIMITS, ChannelDirectory
from control_plane.db.engine import Database
from control_plane.db.models import AuditRow, Base
from control_plane.db.values import utcnow
from control_plane.identity.throttle import MemoryThrottle, RedisThrottle, ThrottleLimits
from control_plane.settings import load_settings
from tests.integration.api.conftest import join, login, make_user

TELEGRAM = Channel.TELEGRAM_PLATFORM


@pytest.fixture
async def client(database_env: dict[str, str], tmp_path: Path) -> AsyncIterator[AsyncTestClient]:
    env = {**database_env, "TENANTRY_TELEGRAM_PLATFORM_BOT_USERNAME": "@tenantry_test_bot"}
    settings = load_settings(env, data_dir=str(tmp_path / "data"))
    tokens: list[str] = []
    app = create_app(settings, on_first_token=tokens.append, reconcile=False)
    async with AsyncTestClient(app=app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {tokens[0]}"
        yield test_client


def directory(client: AsyncTestClient) -> ChannelDirectory:
    found: ChannelDirectory = client.app.state["channels"]
    return found


def later_directory(
    client: AsyncTestClient, now: Callable[[], datetime], throttle: MemoryThrottle | None = None
) -> ChannelDirectory:
    """The app's directory, over the same database and digest key, seen at another time."""
    app_directory = directory(client)
    return ChannelDirectory(
        app_directory.db, app_directory.digest, redeem_throttle=throttle, now=now
    )


async def new_tenant(client: AsyncTestClient, slug: str) -> str:
    made = await client.post("/api/v1/tenants", json={"slug": slug})
    assert made.status_code == 202, made.text
    tenant_id: str = made.json()["id"]
    return tenant_id


async def pairing_code(client: AsyncTestClient, tenant_id: str, **kw: Any) -> dict[str, Any]:
    answer = await client.post(f"/api/v1/tenants/{tenant_id}/channels/telegram/pairing", **kw)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def bindings(client: AsyncTestClient, tenant_id: str, **kw: Any) -> list[dict[str, Any]]:
    answer = await client.get(f"/api/v1/tenants/{tenant_id}/channels", **kw)
    assert answer.status_code == 200, answer.text
    listed: list[dict[str, Any]] = answer.json()
    return listed


async def test_a_code_binds_the_chat_that_sends_it_to_the_tenant(
    client: AsyncTestClient,
) -> None:
    tenant_id = await new_tenant(client, "acme")
    issued = await pairing_code(client, tenant_id)
    assert len(issued["code"]) == 8
    assert f"/start {issued['code']}" in issued["instructions"]
    assert "@tenantry_test_bot" in issued["instructions"]
    expires_at = datetime.fromisoformat(issued["expires_at"])
    assert timedelta(minutes=9) < expires_at - utcnow() <= timedelta(minutes=10)

    outcome = await directory(client).redeem(
        f"  {issued['code'].lower()} ", TELEGRAM, 4242, "Ada Lovelace"
    )

    assert isinstance(outcome, Bound)
    assert outcome.tenant_id == tenant_id
    assert await directory(client).tenant_for(TELEGRAM, 4242) == tenant_id
    assert await directory(client).tenant_for(TELEGRAM, 4243) is None
    [binding] = await bindings(client, tenant_id)
    assert binding["id"] == outcome.binding_id
    assert binding["chat_id"] == "4242"
    assert binding["display_name"] == "Ada Lovelace"
    assert binding["channel"] == "telegram_platform"
    assert binding["status"] == "active"


async def test_a_code_expires_after_ten_minutes(client: AsyncTestClient) -> None:
    tenant_id = await new_tenant(client, "acme")
    code = (await pairing_code(client, tenant_id))["code"]
    issued_at = utcnow()

    late = later_directory(client, lambda: issued_at + timedelta(minutes=10, seconds=1))
    assert isinstance(await late.redeem(code, TELEGRAM, 1, "late"), Expired)
    assert await bindings(client, tenant_id) == []

    in_time = later_directory(client, lambda: issued_at + timedelta(minutes=9))
    assert isinstance(await in_time.redeem(code, TELEGRAM, 1, "in time"), Bound)


async def test_a_code_works_once(client: AsyncTestClient) -> None:
    tenant_id = await new_tenant(client, "acme")
    code = (await pairing_code(client, tenant_id))["code"]

    first = await directory(client).redeem(code, TELEGRAM, 1, "first")
    again = await directory(client).redeem(code, TELEGRAM, 2, "second")

    assert isinstance(first, Bound)
    assert isinstance(again, AlreadyUsed)
    assert await directory(client).tenant_for(TELEGRAM, 2) is None
    assert [b["chat_id"] for b in await bindings(client, tenant_id)] == ["1"]
    # The same chat's /start delivered again (Telegram retries) finds its pairing standing.
    redelivered = await directory(client).redeem(code, TELEGRAM, 1, "first")
    assert isinstance(redelivered, Bound)
    assert redelivered.binding_id == first.binding_id


async def test_wrong_codes_are_throttled_per_chat(client: AsyncTestClient) -> None:
    tenant_id = await new_tenant(client, "acme")
    code = (await pairing_code(client, tenant_id))["code"]
    ticks = [0.0]
    throttle = MemoryThrottle(REDEEM_LIMITS, clock=lambda: ticks[0])
    bot = later_directory(client, utcnow, throttle)

    wrong = [await bot.redeem("ZZZZZZZZ", TELEGRAM, 666, "guesser") for _ in range(5)]
    refused = await bot.redeem(code, TELEGRAM, 666, "guesser")

    assert all(isinstance(outcome, UnknownCode) for outcome in wrong)
    assert isinstance(refused, RateLimited)
    assert 0 < refused.retry_after <= REDEEM_LIMITS.window
    assert await bot.tenant_for(TELEGRAM, 666) is None, "the right code was not even checked"
    assert isinstance(await bot.redeem("nonsense", TELEGRAM, 777, "other chat"), UnknownCode)

    ticks[0] = REDEEM_LIMITS.window + 1
    assert isinstance(await bot.redeem(code, TELEGRAM, 666, "guesser"), Bound)


async def test_codes_bind_chats_to_their_own_tenant_only(client: AsyncTestClient) -> None:
    a, b = await new_tenant(client, "alpha"), await new_tenant(client, "bravo")
    code_a = (await pairing_code(client, a))["code"]
    code_b = (await pairing_code(client, b))["code"]
    bot = directory(client)

    assert isinstance(await bot.redeem(code_b, TELEGRAM, 200, "B's chat"), Bound)
    refused = await bot.redeem(code_a, TELEGRAM, 200, "B's chat")
    assert isinstance(refused, BoundElsewhere), "a chat of B is not pulled over to A"
    assert await bot.tenant_for(TELEGRAM, 200) == b
    bound_a = await bot.redeem(code_a, TELEGRAM, 100, "A's chat")
    assert isinstance(bound_a, Bound)
    assert bound_a.tenant_id == a, "the refused attempt left A's code usable"

    assert await bot.tenant_for(TELEGRAM, 100) == a
    assert [x["chat_id"] for x in await bindings(client, a)] == ["100"]
    assert [x["chat_id"] for x in await bindings(client, b)] == ["200"]


async def test_a_chat_unbound_by_its_tenant_may_pair_elsewhere(client: AsyncTestClient) -> None:
    a, b = await new_tenant(client, "alpha"), await new_tenant(client, "bravo")
    bot = directory(client)
    bound = await bot.redeem((await pairing_code(client, b))["code"], TELEGRAM, 5, "chat")
    assert isinstance(bound, Bound)

    gone = await client.delete(f"/api/v1/tenants/{b}/channels/{bound.binding_id}")
    assert gone.status_code == 204, gone.text
    again = await client.delete(f"/api/v1/tenants/{b}/channels/{bound.binding_id}")
    assert again.status_code == 404
    assert bound.binding_id in again.json()["detail"]

    assert await bindings(client, b) == []
    assert await bot.tenant_for(TELEGRAM, 5) is None
    moved = await bot.redeem((await pairing_code(client, a))["code"], TELEGRAM, 5, "chat")
    assert isinstance(moved, Bound)
    assert moved.tenant_id == a
    actions = await audit_actions(bot.db)
    assert actions.count("channel.pairing_code.create") == 2
    assert actions.count("channel.bind") == 2
    assert actions.count("channel.unbind") == 1


async def audit_actions(db: Database) -> list[str]:
    async with db.transaction(platform="test: read the audit log") as session:
        return list(await session.scalars(select(AuditRow.action).order_by(AuditRow.id)))


async def test_no_code_is_stored_as_typed(client: AsyncTestClient) -> None:
    tenant_id = await new_tenant(client, "acme")
    used = (await pairing_code(client, tenant_id))["code"]
    unused = (await pairing_code(client, tenant_id))["code"]
    assert isinstance(await directory(client).redeem(used, TELEGRAM, 9, "chat"), Bound)

    everything = await database_text(directory(client).db)

    assert "pairing_codes" in everything
    assert used not in everything
    assert unused not in everything


async def database_text(db: Database) -> str:
    """Every row of every table, as text."""
    parts = []
    async with db.transaction(platform="test: scan every table") as session:
        for table in Base.metadata.sorted_tables:
            rows = (await session.execute(select(table))).all()
            parts.append(f"{table.name}: {rows!r}")
    return "\n".join(parts)


async def test_pairing_codes_are_rate_limited_per_tenant(client: AsyncTestClient) -> None:
    tenant_id = await new_tenant(client, "acme")
    for _ in range(10):
        await pairing_code(client, tenant_id)

    refused = await client.post(f"/api/v1/tenants/{tenant_id}/channels/telegram/pairing")

    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert int(refused.headers["retry-after"]) > 0
    assert "pairing codes" in refused.json()["detail"]
    other = await new_tenant(client, "other")
    await pairing_code(client, other)


async def test_members_see_channels_and_only_owners_and_admins_pair(
    client: AsyncTestClient,
) -> None:
    tenant = {"id": await new_tenant(client, "acme")}
    admin = {"Authorization": client.headers["Authorization"]}
    callers = {}
    for role in ("owner", "admin", "member"):
        await make_user(client, admin, f"{role}@acme.example")
        await join(client, admin, tenant, f"{role}@acme.example", role)
        callers[role] = await login(client, f"{role}@acme.example")
    path = f"/api/v1/tenants/{tenant['id']}/channels"

    for role in ("owner", "admin"):
        await pairing_code(client, tenant["id"], headers=callers[role])
    refused = await client.post(f"{path}/telegram/pairing", headers=callers["member"])
    assert refused.status_code == 403
    assert "channels:write" in refused.json()["detail"]
    assert await bindings(client, tenant["id"], headers=callers["member"]) == []


async def test_another_tenants_binding_is_neither_seen_nor_removed(
    client: AsyncTestClient,
) -> None:
    a, b = await new_tenant(client, "alpha"), await new_tenant(client, "bravo")
    admin = {"Authorization": client.headers["Authorization"]}
    await make_user(client, admin, "owner@alpha.example")
    await join(client, admin, {"id": a}, "owner@alpha.example", "owner")
    owner_a = await login(client, "owner@alpha.example")
    bound = await directory(client).redeem(
        (await pairing_code(client, b))["code"], TELEGRAM, 7, "B's chat"
    )
    assert isinstance(bound, Bound)

    through_a = await client.delete(
        f"/api/v1/tenants/{a}/channels/{bound.binding_id}", headers=owner_a
    )
    into_b = await client.delete(
        f"/api/v1/tenants/{b}/channels/{bound.binding_id}", headers=owner_a
    )
    listed = await client.get(f"/api/v1/tenants/{b}/channels", headers=owner_a)

    assert through_a.status_code == 404
    assert into_b.status_code == 404
    assert listed.status_code == 404
    assert await bindings(client, a, headers=owner_a) == []
    assert await directory(client).tenant_for(TELEGRAM, 7) == b


async def test_a_code_sent_from_many_chats_at_once_binds_one(client: AsyncTestClient) -> None:
    tenant_id = await new_tenant(client, "acme")
    code = (await pairing_code(client, tenant_id))["code"]
    bot = directory(client)

    outcomes = await asyncio.gather(
        *(bot.redeem(code, TELEGRAM, chat, f"chat {chat}") for chat in range(10, 16))
    )

    assert sum(isinstance(o, Bound) for o in outcomes) == 1
    assert sum(isinstance(o, AlreadyUsed) for o in outcomes) == 5
    assert len(await bindings(client, tenant_id)) == 1


async def test_one_chat_pairing_with_two_tenants_at_once_ends_with_one(
    client: AsyncTestClient,
) -> None:
    a, b = await new_tenant(client, "alpha"), await new_tenant(client, "bravo")
    code_a = (await pairing_code(client, a))["code"]
    code_b = (await pairing_code(client, b))["code"]
    bot = directory(client)

    outcomes = await asyncio.gather(
        bot.redeem(code_a, TELEGRAM, 31, "chat"), bot.redeem(code_b, TELEGRAM, 31, "chat")
    )

    [bound] = [o for o in outcomes if isinstance(o, Bound)]
    assert sum(isinstance(o, BoundElsewhere) for o in outcomes) == 1
    assert await bot.tenant_for(TELEGRAM, 31) == bound.tenant_id
    listed = {t: await bindings(client, t) for t in (a, b)}
    assert sorted(len(rows) for rows in listed.values()) == [0, 1]


async def test_wrong_codes_are_counted_in_redis_apart_from_logins(
    database_env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    env = {**database_env, "TENANTRY_REDIS_URL": redis_url}
    settings = load_settings(env, data_dir=str(tmp_path / "data"))
    app = create_app(settings, reconcile=False)
    shared = redis.asyncio.from_url(redis_url)
    try:
        async with AsyncTestClient(app=app) as test_client:
            wired = directory(test_client)
            assert isinstance(wired.redeem_throttle, RedisThrottle), "shared by replicas"
            bot = ChannelDirectory(
                wired.db, wired.digest, redeem_throttle=RedisThrottle(shared, REDEEM_LIMITS)
            )
            wrong = [await bot.redeem("ZZZZZZZZ", TELEGRAM, 5150, "guesser") for _ in range(5)]
            refused = await bot.redeem("ZZZZZZZZ", TELEGRAM, 5150, "guesser")
            logins = RedisThrottle(shared, ThrottleLimits())
            login = await logins.reserve("telegram_platform:5150", "telegram_platform")
    finally:
        await shared.aclose()

    assert all(isinstance(outcome, UnknownCode) for outcome in wrong)
    assert isinstance(refused, RateLimited)
    assert 0 < refused.retry_after <= REDEEM_LIMITS.window
    assert login.account_key.startswith("tenantry:login:"), "login windows are apart"


async def test_messages_for_a_gateway_that_is_down_are_kept_for_any_replica(
    client: AsyncTestClient,
) -> None:
    """The tenant's gateway is not running (no reconciler here): the message is kept, in
    the database, where another replica (or this one after a restart) finds it."""
    from control_plane.channels.forwarding import Forwarder
    from control_plane.db.models import PlatformInboundRow
    from tenant_gateway.channels.contract import InboundMessage

    tenant_id = await new_tenant(client, "acme")
    here: Forwarder = client.app.state["platform_bot"].forwarder
    message = InboundMessage(
        channel="telegram_platform",
        message_id="42:1",
        chat_id="42",
        peer_id="42",
        chat_type="dm",
        text="anyone there?",
        received_at=utcnow(),
    )
    await here.submit(tenant_id, message)
    assert here.backlog == {tenant_id}
    await here.submit(tenant_id, message)  # a backlog: kept behind the first, in order

    elsewhere = Forwarder(client.app.state["db"], client.app.state["gateway_link"])
    assert elsewhere.backlog == frozenset()
    assert await elsewhere._look_for_kept() == 1
    assert elsewhere.backlog == {tenant_id}
    async with client.app.state["db"].transaction(tenant=tenant_id) as session:
        kept = (await session.scalars(select(PlatformInboundRow))).all()
    assert [r.tenant_id for r in kept] == [tenant_id, tenant_id]
    assert b"anyone there?" in kept[0].message
