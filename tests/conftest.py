"""Shared fixtures: real PostgreSQL and Redis servers for the tests.

* ``postgres_server`` (session): admin URL of a server we may create databases on;
  ``$TENANTRY_TEST_DATABASE_URL`` if set, else a throwaway cluster.
* ``postgres_url``: a fresh, empty database per test, dropped afterwards.
* ``database_url``: runs a test twice, on SQLite (a file in ``tmp_path``) and on
  PostgreSQL (marked ``postgres``). On PostgreSQL it connects as ``tenantry_owner``, which
  owns the database but is no superuser, so row-level security (forced on the owner too)
  binds every test: a single-role installation.
* ``app_database_url`` / ``database_env``: the same database as the application role
  ``tenantry_app`` (owns nothing, no ``BYPASSRLS``) and the settings of a two-role
  installation (``TENANTRY_DATABASE_URL`` as that role, ``TENANTRY_DATABASE_MIGRATION_URL``
  as the owner); on SQLite both are the one file.
* ``redis_server`` (session) / ``redis_url``: ``$TENANTRY_TEST_REDIS_URL`` if set, else
  a throwaway redis-server; the database is flushed before and after each test.

Tests using PostgreSQL are marked ``postgres`` automatically, so
``pytest -m "not postgres"`` runs without a server. The machinery is in
``tests/services.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests import services


def _configured_or_throwaway(
    env_var: str, throwaway: Callable[[], AbstractContextManager[str]]
) -> Iterator[str]:
    """Yield ``$env_var`` if set, else the URL of a throwaway server; fail clearly if none."""
    if url := os.environ.get(env_var):
        yield url
        return
    failure = ""
    try:
        with throwaway() as url:
            yield url
    except services.ServiceError as exc:
        failure = str(exc)
    if failure:  # outside the except block, so the report shows the message only once
        pytest.fail(failure, pytrace=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server on which the tests may create databases."""
    yield from _configured_or_throwaway("TENANTRY_TEST_DATABASE_URL", services.throwaway_postgres)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """``postgresql://`` URL of a new, empty database, dropped after the test."""
    with services.scratch_database(postgres_server) as url:
        yield url


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/tenantry.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def app_database_url(database_url: str) -> str:
    """``database_url`` as the application role on PostgreSQL; the same URL on SQLite."""
    if database_url.startswith("sqlite"):
        return database_url
    return services.as_role(database_url, services.APP_ROLE)


@pytest.fixture
def database_env(database_url: str, app_database_url: str) -> dict[str, str]:
    """Settings of a two-role installation: the app as ``app_database_url``, migrations as
    the owner (``database_url``)."""
    return {
        "TENANTRY_DATABASE_URL": app_database_url,
        "TENANTRY_DATABASE_MIGRATION_URL": database_url,
    }


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """``redis://`` URL of a Redis server (and database) the tests may flush."""
    yield from _configured_or_throwaway("TENANTRY_TEST_REDIS_URL", services.throwaway_redis)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """``redis://`` URL of an empty Redis database, flushed again after the test."""
    services.redis_command(redis_server, "FLUSHDB")
    yield redis_server
    services.redis_command(redis_server, "FLUSHDB")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
