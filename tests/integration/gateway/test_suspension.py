"""A gateway whose unseal is refused because its tenant is suspended stops serving model
calls with a clear error, and serves again once an unseal succeeds (no restart)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tenant_gateway.app import create_app
from tenant_gateway.contract import (
    BUNDLE_FILE,
    IDENTITY_FILE,
    TENANT_SUSPENDED_PROBLEM,
    GatewayBundle,
    GatewayKeyDigest,
    SealedCredential,
    digest_gateway_key,
)
from tenant_gateway.credentials import CredentialKeeper
from tenant_gateway.keys import BundleSource
from tenant_gateway.models import ModelClient
from tenant_gateway.sealed import seal_credential
from tenant_gateway.settings import load_settings
from tenant_gateway.store import DATABASE_FILE, ConversationStore
from tests.doubles.http_server import serve_in_thread
from tests.doubles.openai_upstream import OpenAIUpstream, openai_upstream
from tests.waiting import eventually

TENANT_ID = "01a20000-0000-7000-8000-00000000beef"
IDENTITY = "tgi_suspension-test-identity-token-0001"
DIGEST_KEY = os.urandom(32)
DEK = os.urandom(32)
GATEWAY_KEY = "tgk_suspension-test-gateway-key-value-01"


@dataclass
class UnsealDouble:
    """The control plane's unseal endpoint: 403 tenant-suspended while ``suspended``."""

    suspended: bool = True
    calls: list[str] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.calls.append(scope["path"])
        headers = dict(scope["headers"])
        if headers.get(b"authorization") != f"Bearer {IDENTITY}".encode():
            status, body = 403, {"type": "about:blank", "detail": "bad token", "status": 403}
        elif self.suspended:
            status, body = (
                403,
                {
                    "type": TENANT_SUSPENDED_PROBLEM,
                    "title": "Tenant suspended",
                    "status": 403,
                    "detail": "the tenant is suspended; its credentials stay sealed",
                },
            )
        else:
            status = 200
            body = {"tenant_id": TENANT_ID, "data_keys": {"1": base64.b64encode(DEK).decode()}}
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


@pytest.fixture
def upstream() -> Iterator[OpenAIUpstream]:
    with openai_upstream() as server:
        yield server


def write_bundle(runtime_dir: Path, control_plane_url: str, models_url: str) -> None:
    ciphertext = seal_credential(
        DEK, b'{"api_key": "sk-x"}', tenant_id=TENANT_ID, credential_id="c1", version=1
    )
    bundle = GatewayBundle(
        tenant_id=TENANT_ID,
        tenant_slug="paused",
        keys=[GatewayKeyDigest(id="k", digest=digest_gateway_key(GATEWAY_KEY, DIGEST_KEY))],
        key_digest_key=base64.b64encode(DIGEST_KEY).decode(),
        platform_models_url=models_url,
        credentials=[
            SealedCredential(
                id="c1",
                provider="openai",
                version=1,
                dek_version=1,
                ciphertext=base64.b64encode(ciphertext).decode(),
            )
        ],
        control_plane_url=control_plane_url,
    )
    (runtime_dir / BUNDLE_FILE).write_bytes(msgspec.json.encode(bundle))
    (runtime_dir / IDENTITY_FILE).write_text(IDENTITY + "\n")


async def test_suspended_refuses_model_calls_and_resuming_restores_them(
    tmp_path: Path, upstream: OpenAIUpstream
) -> None:
    double = UnsealDouble(suspended=True)
    with serve_in_thread(double) as control_plane:
        write_bundle(tmp_path, control_plane.url, upstream.url)
        settings = load_settings({})
        bundle_path = tmp_path / BUNDLE_FILE
        bundles = BundleSource(
            bundle_path,
            msgspec.json.decode(bundle_path.read_bytes(), type=GatewayBundle),
            interval=0.05,
        )
        keeper = CredentialKeeper(tmp_path, retry_interval=0.1)
        app = create_app(
            settings,
            bundles,
            ConversationStore(tmp_path / DATABASE_FILE),
            ModelClient(settings),
            credentials=keeper,
        )
        with serve_in_thread(app, lifespan="on") as gateway:
            async with httpx.AsyncClient(
                base_url=gateway.url, headers={"Authorization": f"Bearer {GATEWAY_KEY}"}
            ) as client:
                chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                refused = await client.post("/v1/chat/completions", json=chat)
                assert refused.status_code == 403
                body = refused.json()
                assert body["error"]["code"] == "tenant_suspended"
                assert "suspended" in body["detail"]
                assert upstream.requests == [], "nothing reaches a model while suspended"
                assert (await client.get("/readyz")).json()["credentials"] == []

                double.suspended = False  # resumed: the next unseal succeeds

                async def serving_again() -> bool:
                    answer = await client.post("/v1/chat/completions", json=chat)
                    return answer.status_code == 200

                await eventually(serving_again, timeout=10, what="serving after resume")
                assert (await client.get("/readyz")).json()["credentials"] == ["openai"]
    assert len(double.calls) >= 2
