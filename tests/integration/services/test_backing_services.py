"""The backing-service fixtures give each test a real, empty, private database."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import psycopg
import pytest

from tests.services import redis_command

seen_databases: set[str] = set()


@pytest.mark.parametrize("attempt", [1, 2])
def test_each_test_gets_its_own_empty_postgres_database(postgres_url: str, attempt: int) -> None:
    with psycopg.connect(postgres_url) as conn:
        (name,) = conn.execute("SELECT current_database()").fetchone() or ("",)
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        conn.execute("CREATE TABLE marker (attempt int)")
        conn.execute("INSERT INTO marker VALUES (%s)", (attempt,))
        assert conn.execute("SELECT attempt FROM marker").fetchall() == [(attempt,)]

    assert name.startswith("t_")
    assert name not in seen_databases
    assert tables == (0,)
    seen_databases.add(name)


def test_database_url_is_usable(database_url: str, request: pytest.FixtureRequest) -> None:
    if database_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert request.node.get_closest_marker("postgres") is None
    else:
        assert database_url.startswith("postgresql://")
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert request.node.get_closest_marker("postgres") is not None


def test_redis_ping_set_get(redis_url: str) -> None:
    assert redis_command(redis_url, "PING") == "PONG"
    assert redis_command(redis_url, "SET", "greeting", "hello") == "OK"
    assert redis_command(redis_url, "GET", "greeting") == b"hello"
    assert redis_command(redis_url, "GET", "missing") is None


@pytest.mark.parametrize("attempt", [1, 2])
def test_each_test_starts_with_an_empty_redis_database(redis_url: str, attempt: int) -> None:
    assert redis_command(redis_url, "DBSIZE") == 0
    assert redis_command(redis_url, "SET", "left-behind", attempt) == "OK"
