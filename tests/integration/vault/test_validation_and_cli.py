"""Validation on store through the provider's API, and key rotation from the command line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from control_plane.app import create_app
from control_plane.db.engine import Database
from control_plane.db.models import TenantDataKeyRow
from control_plane.settings import load_settings
from tests.doubles.provider_apis import ProviderAPIs, provider_apis
from tests.environment import without_settings
from tests.integration.api.test_tenants_api import assert_problem, create

GOOD_KEY = "sk-valid-planted-key-000000000001"
BAD_KEY = "sk-wrong-planted-key-000000000002"
GOOD_TOKEN = "123456789:AAvalidPlantedTelegramToken_abcdefghijk"


@pytest.fixture
def apis() -> AsyncIterator[ProviderAPIs]:
    with provider_apis(valid_keys=[GOOD_KEY], valid_tokens=[GOOD_TOKEN]) as served:
        yield served


@pytest.fixture
async def client(tmp_path: Path, apis: ProviderAPIs) -> AsyncIterator[AsyncTestClient]:
    env = {
        "TENANTRY_OPENAI_API_BASE": apis.bases.openai,
        "TENANTRY_ANTHROPIC_API_BASE": apis.bases.anthropic,
        "TENANTRY_TELEGRAM_API_BASE": apis.bases.telegram,
    }
    settings = load_settings(env, data_dir=str(tmp_path / "data"))
    tokens: list[str] = []
    app = create_app(settings, on_first_token=tokens.append, reconcile=False)
    async with AsyncTestClient(app=app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {tokens[0]}"
        yield test_client


async def test_validate_true_checks_with_the_provider(client: AsyncTestClient) -> None:
    await create(client, "acme")
    base = "/api/v1/tenants/acme/credentials"
    ok = await client.put(f"{base}/openai?validate=true", json={"api_key": GOOD_KEY})
    assert ok.status_code == 200, ok.text
    bot = await client.put(f"{base}/telegram_bot?validate=true", json={"token": GOOD_TOKEN})
    assert bot.status_code == 200, bot.text

    refused = await client.put(f"{base}/anthropic?validate=true", json={"api_key": BAD_KEY})
    body = assert_problem(refused, 422, "anthropic refused the credential (HTTP 401)")
    assert body["title"] == "Credential refused"
    assert BAD_KEY not in refused.text
    # A refused key is not stored.
    stored = [c["provider"] for c in (await client.get(base)).json()]
    assert stored == ["openai", "telegram_bot"]


async def test_unreachable_provider_is_a_502(client: AsyncTestClient, apis: ProviderAPIs) -> None:
    await create(client, "acme")
    apis.error_status = 503
    response = await client.put(
        "/api/v1/tenants/acme/credentials/openai?validate=true", json={"api_key": GOOD_KEY}
    )
    assert_problem(response, 502, "openai")
    assert GOOD_KEY not in response.text


def tenantry(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "control_plane.cli.main",
            "vault",
            "--data-dir",
            str(data_dir),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=without_settings(**env),
        check=False,
    )


async def test_rotation_commands(tmp_path: Path, database_env: dict[str, str]) -> None:
    data_dir = tmp_path / "data"
    settings = load_settings(database_env, data_dir=str(data_dir))
    app = create_app(settings, on_first_token=lambda _token: None, reconcile=False)
    async with AsyncTestClient(app=app) as client:
        client.headers["Authorization"] = f"Bearer {(data_dir / 'admin-token').read_text().strip()}"
        for slug in ("a", "b"):
            await create(client, slug)
            await client.put(
                f"/api/v1/tenants/{slug}/credentials/openai", json={"api_key": GOOD_KEY}
            )
    old_ring = (data_dir / "kek").read_text()

    rotated = await asyncio.to_thread(
        lambda: tenantry(data_dir, "rotate-kek", "--new-key", **database_env)
    )
    assert rotated.returncode == 0, rotated.stderr
    assert "2 data key(s) rewrapped" in rotated.stdout
    new_ring = (data_dir / "kek").read_text()
    assert new_ring.count(",") == old_ring.count(",") + 1, "the new key is added, old kept"
    assert (data_dir / "kek").stat().st_mode & 0o777 == 0o600
    for secret_part in old_ring.strip().split(","):
        assert secret_part.split(":")[1] not in rotated.stdout + rotated.stderr
    active = new_ring.split(",")[0].split(":")[0]
    db = Database(settings.database_url)
    async with db.transaction(platform="test: every tenant's data key") as session:
        assert set(await session.scalars(select(TenantDataKeyRow.kek_id))) == {active}
    await db.close()

    again = await asyncio.to_thread(lambda: tenantry(data_dir, "rotate-kek", **database_env))
    assert "0 data key(s) rewrapped" in again.stdout

    dek = await asyncio.to_thread(lambda: tenantry(data_dir, "rotate-dek", "a", **database_env))
    assert dek.returncode == 0, dek.stderr
    assert "1 credential(s) of a re-encrypted" in dek.stdout
    missing = await asyncio.to_thread(
        lambda: tenantry(data_dir, "rotate-dek", "zzz", **database_env)
    )
    assert missing.returncode == 1
    assert "no tenant 'zzz'" in missing.stderr

    # The control plane, started again, reads every credential under the rotated keys.
    app = create_app(settings, on_first_token=lambda _token: None, reconcile=False)
    async with AsyncTestClient(app=app):
        vault = app.state.vault
        for slug in ("a", "b"):
            tenant_id = await app.state.tenants.resolve_id(slug)
            assert (await vault.reveal(tenant_id, "openai"))["api_key"] == GOOD_KEY
