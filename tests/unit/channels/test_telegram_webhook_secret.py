"""The secret token of a tenant's Telegram bot webhook: derived from the control plane's token
key per tenant (stored nowhere, the same on every replica), in the alphabet and length
Telegram accepts, and checked on every relayed call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from control_plane.channels.gateways import GatewayLink
from control_plane.channels.tenant_bots import TenantBots, WebhookSecretRefused
from control_plane.db.engine import Database
from control_plane.vault.digests import TokenDigests
from tests.doubles.telegram_api import SECRET_TOKEN

KEY = bytes(range(32))
ACME = "01a20000-0000-7000-8000-0000000acme"
OTHER = "01a20000-0000-7000-8000-00000000beef"


@pytest.fixture
async def bots(tmp_path: Path) -> AsyncIterator[TenantBots]:
    digests = TokenDigests(KEY)
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'unused.sqlite3'}")
    link = GatewayLink(database, digests)
    async with httpx.AsyncClient() as http:
        yield TenantBots(link, http, "http://127.0.0.1:9", digests, "https://cp.example")
    await link.close()
    await database.engine.dispose()


async def test_the_secret_is_telegrams_shape_stable_and_per_tenant(bots: TenantBots) -> None:
    secret = bots.secret(ACME)
    assert SECRET_TOKEN.fullmatch(secret), "[A-Za-z0-9_-], 1 to 256 characters"
    assert secret == TokenDigests(KEY).webhook_secret(f"telegram:{ACME}"), "every replica"
    assert secret != bots.secret(OTHER)
    assert secret != TokenDigests(bytes(32)).webhook_secret(f"telegram:{ACME}")


@pytest.mark.parametrize("presented", [None, "", "not-the-secret", "other tenant"])
async def test_a_missing_or_wrong_secret_is_refused(
    bots: TenantBots, presented: str | None
) -> None:
    if presented == "other tenant":
        presented = bots.secret(OTHER)
    with pytest.raises(WebhookSecretRefused) as refused:
        bots.check_secret(ACME, presented)
    assert refused.value.status_code == 401
    assert "X-Telegram-Bot-Api-Secret-Token" in str(refused.value)


async def test_the_registered_secret_passes(bots: TenantBots) -> None:
    bots.check_secret(ACME, bots.secret(ACME))
