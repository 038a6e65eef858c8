"""The processes that handle plaintext register it with the log filter: the control plane's
vault for what it validates, stores and reveals, the gateway's credential keeper for
everything it unseals. A log line that then names one of those values, whatever its shape,
shows it masked."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from control_plane.app import create_app
from control_plane.cli import logs
from control_plane.db.engine import Database
from control_plane.settings import load_settings
from control_plane.vault.keyring import KekRing
from tenant_gateway.contract import (
    IDENTITY_FILE,
    GatewayBundle,
    SealedCredential,
    UnsealResponse,
)
from tenant_gateway.credentials import CredentialKeeper
from tenant_gateway.redaction import MASK, SECRET_VALUES, RedactSecrets, SecretValues
from tenant_gateway.sealed import seal_credential
from tests.doubles.http_server import serve_in_thread
from tests.doubles.provider_apis import ProviderAPIs, provider_apis
from tests.integration.api.test_tenants_api import create
from tests.integration.vault.test_rotation import make_tenants, vault_with

COMPAT_KEY = "h4Jd9sLq2WnV7xRt0PzYcB3m"  # no known prefix: only value redaction catches it
REFUSED_KEY = "r8Kf3nQw6ZpT1vXs5HyLdJ0e"
BOT_TOKEN = "246813579:AAvalueRedactionBotToken_abcdefghijk"
TENANT_ID = "01a20000-0000-7000-8000-00000000c0de"
IDENTITY = "tgi_value-redaction-identity-token-0001"


@pytest.fixture
def apis() -> Iterator[ProviderAPIs]:
    with provider_apis(valid_keys=[COMPAT_KEY]) as served:
        yield served


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The control plane's own log set-up (JSON lines), writing to a buffer."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
async def client(tmp_path: Path, apis: ProviderAPIs) -> AsyncIterator[AsyncTestClient]:
    settings = load_settings({}, data_dir=str(tmp_path / "data"))
    tokens: list[str] = []
    app = create_app(settings, on_first_token=tokens.append, reconcile=False)
    async with AsyncTestClient(app=app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {tokens[0]}"
        yield test_client


async def test_the_control_plane_masks_values_it_validated_or_stored(
    client: AsyncTestClient, apis: ProviderAPIs, log_lines: io.StringIO
) -> None:
    await create(client, "acme")
    base = "/api/v1/tenants/acme/credentials/openai_compatible?validate=true"
    fields = {"api_key": COMPAT_KEY, "base_url": f"{apis.base}/v1"}
    assert (await client.put(base, json=fields)).status_code == 200
    refused = await client.put(base, json={**fields, "api_key": REFUSED_KEY})
    assert refused.status_code == 422, refused.text
    assert COMPAT_KEY in SECRET_VALUES
    assert REFUSED_KEY in SECRET_VALUES, "a refused key was handled in plaintext too"
    assert fields["base_url"] not in SECRET_VALUES, "non-secret fields stay readable"

    log = logging.getLogger("control_plane.test")
    log.info("upstream answered for %s", COMPAT_KEY)
    log.warning("and then %s", {"api_key": REFUSED_KEY, "base_url": fields["base_url"]})
    output = log_lines.getvalue()
    assert COMPAT_KEY not in output
    assert REFUSED_KEY not in output
    messages = [json.loads(line)["msg"] for line in output.splitlines()]
    assert f"upstream answered for {MASK}" in messages
    assert fields["base_url"] in output


async def test_the_vault_registers_what_it_reveals_and_re_encrypts(
    db: Database, http: httpx.AsyncClient
) -> None:
    ring = KekRing.generate("k1")
    storing = vault_with(db, ring, http)
    (tenant_id, *_) = await make_tenants(storing, db)
    await storing.put(tenant_id, "telegram_bot", {"token": BOT_TOKEN}, validate=False)
    # Another process (a restarted control plane) that has not seen the value yet:
    revealing = vault_with(db, ring, http)
    revealing.secret_values = SecretValues()
    assert BOT_TOKEN not in revealing.secret_values
    assert (await revealing.reveal(tenant_id, "telegram_bot"))["token"] == BOT_TOKEN
    assert BOT_TOKEN in revealing.secret_values
    # And the same for a `tenantry vault rotate-dek`, which re-encrypts the plaintext.
    rotating = vault_with(db, ring, http)
    rotating.secret_values = SecretValues()
    assert await rotating.rotate_dek(tenant_id) == 1
    assert BOT_TOKEN in rotating.secret_values


class UnsealAnswer:
    """The control plane's unseal endpoint, answering one tenant's data key."""

    def __init__(self, dek: bytes) -> None:
        self.answer = UnsealResponse(
            tenant_id=TENANT_ID, data_keys={"1": base64.b64encode(dek).decode()}
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        authorized = dict(scope["headers"]).get(b"authorization") == f"Bearer {IDENTITY}".encode()
        status = 200 if authorized else 403
        body = json.dumps(
            {"tenant_id": TENANT_ID, "data_keys": self.answer.data_keys}
            if authorized
            else {"type": "about:blank", "status": 403, "detail": "bad token"}
        ).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def sealed(dek: bytes, credential_id: str, provider: str, fields: dict[str, str]) -> Any:
    ciphertext = seal_credential(
        dek,
        json.dumps(fields).encode(),
        tenant_id=TENANT_ID,
        credential_id=credential_id,
        version=1,
    )
    return SealedCredential(
        id=credential_id,
        provider=provider,
        version=1,
        dek_version=1,
        ciphertext=base64.b64encode(ciphertext).decode(),
    )


async def test_the_gateway_masks_everything_it_unsealed(tmp_path: Path) -> None:
    dek = os.urandom(32)
    (tmp_path / IDENTITY_FILE).write_text(IDENTITY + "\n")
    values = SecretValues()
    keeper = CredentialKeeper(tmp_path, secret_values=values)
    compat = {"api_key": COMPAT_KEY, "base_url": "http://127.0.0.1:9/v1"}
    with serve_in_thread(UnsealAnswer(dek)) as control_plane:
        bundle = GatewayBundle(
            tenant_id=TENANT_ID,
            tenant_slug="masked",
            keys=[],
            key_digest_key=base64.b64encode(bytes(32)).decode(),
            credentials=[
                sealed(dek, "c1", "openai_compatible", compat),
                sealed(dek, "c2", "telegram_bot", {"token": BOT_TOKEN}),
            ],
            control_plane_url=control_plane.url,
        )
        assert len(values) == 0
        await keeper.sync(bundle)
    assert keeper.providers == ["openai_compatible", "telegram_bot"]
    assert keeper.get("openai_compatible") == compat
    dek_text = base64.b64encode(dek).decode()
    for value in (COMPAT_KEY, BOT_TOKEN, IDENTITY, dek_text):
        assert value in values

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets(values))
    log = logging.getLogger("tenant_gateway.test")
    log.addHandler(handler)
    try:
        log.warning("upstream refused %s (data key %s)", COMPAT_KEY, dek_text)
    finally:
        log.removeHandler(handler)
    assert stream.getvalue().strip() == f"upstream refused {MASK} (data key {MASK})"
