"""Brute force: concurrent guesses against one account, or from one address, evaluate at
most the limit; the rest are refused with 429 and Retry-After, with the in-process throttle
and with Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.identity.conftest import PASSWORD, Api, open_api

GUESSES = 20


class Seconds:
    """The throttle's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def throttled(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Api, Seconds]]:
    env = {"TENANTRY_LOGIN_ATTEMPTS_PER_ACCOUNT": "5", "TENANTRY_LOGIN_ATTEMPTS_PER_ADDRESS": "12"}
    if request.param == "redis":
        env["TENANTRY_REDIS_URL"] = request.getfixturevalue("redis_url")
    database = f"sqlite+aiosqlite:///{tmp_path / 'throttle.sqlite3'}"
    async for api in open_api(database, tmp_path, env):
        seconds = Seconds()
        api.client.app.state.sessions.throttle.clock = seconds
        yield api, seconds


async def attempt(api: Api, email: str, password: str) -> int:
    answer = await api.client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}
    )
    if answer.status_code == 429:
        assert int(answer.headers["retry-after"]) >= 1
        assert "too many" in answer.json()["detail"]
    return answer.status_code


async def denied_logins(api: Api) -> int:
    entries = (
        await api.client.get(
            "/api/v1/audit", params={"action": "auth.login", "outcome": "denied"}, headers=api.admin
        )
    ).json()
    return len(entries)


async def test_concurrent_guesses_at_one_account_evaluate_at_most_the_limit(
    throttled: tuple[Api, Seconds],
) -> None:
    api, seconds = throttled
    await api.make_user("target@example.com")
    codes = await asyncio.gather(
        *(attempt(api, "target@example.com", f"wrong guess {n:04d}") for n in range(GUESSES))
    )
    assert sorted(codes) == [401] * 5 + [429] * (GUESSES - 5)
    assert await denied_logins(api) == 5, "only the reserved attempts looked at a password"
    # Even the right password waits for the window.
    assert await attempt(api, "target@example.com", PASSWORD) == 429
    seconds.now += 901
    assert await attempt(api, "target@example.com", PASSWORD) == 200
    # Success clears the account's window.
    assert await attempt(api, "target@example.com", "wrong again xxxx") == 401


async def test_one_address_guessing_many_accounts_is_held_back(
    throttled: tuple[Api, Seconds],
) -> None:
    api, _seconds = throttled
    codes = await asyncio.gather(
        *(attempt(api, f"user{n}@example.com", "some guess 12345") for n in range(GUESSES))
    )
    assert codes.count(401) == 12
    assert codes.count(429) == GUESSES - 12


async def test_unknown_and_known_accounts_answer_alike(throttled: tuple[Api, Seconds]) -> None:
    api, _ = throttled
    await api.make_user("real@example.com")
    known = await api.client.post(
        "/api/v1/auth/login", json={"email": "real@example.com", "password": "wrong password 1"}
    )
    unknown = await api.client.post(
        "/api/v1/auth/login", json={"email": "ghost@example.com", "password": "wrong password 1"}
    )
    assert known.status_code == unknown.status_code == 401
    assert known.json()["detail"] == unknown.json()["detail"] == "email or password is wrong"
