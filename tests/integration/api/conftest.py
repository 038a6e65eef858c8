"""The control plane app in-process, on SQLite and PostgreSQL, with its reconciler off:
these tests pin the HTTP contract; the reconciler has suites of its own. On PostgreSQL the
app connects as the application role (row-level security binds it; the owner migrates)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from control_plane.app import create_app
from control_plane.settings import load_settings


@pytest.fixture
async def client(database_env: dict[str, str], tmp_path: Path) -> AsyncIterator[AsyncTestClient]:
    settings = load_settings(database_env, data_dir=str(tmp_path / "data"))
    tokens: list[str] = []
    app = create_app(settings, on_first_token=tokens.append, reconcile=False)
    async with AsyncTestClient(app=app) as test_client:
        assert len(tokens) == 1, "a fresh installation makes exactly one first admin token"
        test_client.headers["Authorization"] = f"Bearer {tokens[0]}"
        yield test_client
