"""Fixtures of the vault's integration tests: a migrated database (SQLite and PostgreSQL, as
the application role) and an HTTP client for the vault's provider calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from control_plane.db import migrate
from control_plane.db.engine import Database
from control_plane.settings import normalize_database_url


@pytest.fixture
async def db(database_url: str, app_database_url: str) -> AsyncIterator[Database]:
    url = normalize_database_url(app_database_url)
    await asyncio.to_thread(migrate.upgrade, normalize_database_url(database_url), app_url=url)
    database = Database(url)
    yield database
    await database.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client
