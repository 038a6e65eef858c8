"""Requests that are in flight at the same moment, for tests of races.

Litestar's test client hands the app one request at a time (it runs the app on an event loop
of its own, in a thread, and waits for each answer), so ``asyncio.gather`` over its calls
tests nothing concurrent. :func:`send_at_once` sends straight to the app on that loop instead,
after opening a database connection per request, so that no request falls behind the others
while a connection is set up.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

Request = tuple[str, str, dict[str, Any]]
"""``(method, path, httpx keywords)``, e.g. ``("POST", "/api/v1/auth/refresh", {"json": …})``."""


async def send_at_once(
    client: AsyncTestClient[Litestar], *requests: Request
) -> list[httpx.Response]:
    app = client.app
    db = app.state.db

    async def send_all() -> list[httpx.Response]:
        await asyncio.gather(*(db.ping() for _ in requests))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return list(
                await asyncio.gather(*(http.request(m, path, **kw) for m, path, kw in requests))
            )

    return await asyncio.to_thread(client.blocking_portal.call, send_all)
