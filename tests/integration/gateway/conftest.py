"""Fixtures for the gateway's integration tests: the OpenAI-compatible upstream double and
the real gateway app, each served over HTTP on 127.0.0.1 from a background thread."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tenant_gateway.app import create_app
from tenant_gateway.contract import (
    BUNDLE_FILE,
    Budget,
    GatewayBundle,
    GatewayKeyDigest,
    digest_gateway_key,
)
from tenant_gateway.keys import BundleSource
from tenant_gateway.models import ModelClient
from tenant_gateway.settings import load_settings
from tenant_gateway.store import DATABASE_FILE, ConversationStore, StoredMessage, read_conversation
from tests.doubles.http_server import serve_in_thread
from tests.doubles.openai_upstream import OpenAIUpstream, openai_upstream

TENANT_ID = "01a20000-0000-7000-8000-00000000a11c"
CHAT_BODY: dict[str, Any] = {
    "model": "stub-model",
    "messages": [{"role": "user", "content": "hello"}],
}


DIGEST_KEY = bytes(range(32))
"""The tenant's key-digest key in these bundles (made up: any 32 bytes do)."""


def new_key() -> str:
    return "tgk_" + secrets.token_urlsafe(32)


def write_bundle(
    runtime_dir: Path,
    keys: list[str],
    platform_models_url: str | None,
    budget: Budget | None = None,
) -> None:
    """Replace ``bundle.json`` the way the control plane does: a temp file, then a rename."""
    bundle = GatewayBundle(
        tenant_id=TENANT_ID,
        tenant_slug="acme",
        keys=[
            GatewayKeyDigest(id=f"key-{n}", digest=digest_gateway_key(k, DIGEST_KEY))
            for n, k in enumerate(keys)
        ],
        key_digest_key=base64.b64encode(DIGEST_KEY).decode(),
        platform_models_url=platform_models_url,
        budget=budget,
    )
    tmp = runtime_dir / ".bundle.tmp"
    tmp.write_bytes(msgspec.json.encode(bundle))
    tmp.replace(runtime_dir / BUNDLE_FILE)


def unused_port_url() -> str:
    """An OpenAI base URL on a port where nothing listens."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class Gateway:
    """A gateway app served in-process, with what a test needs to drive it."""

    def __init__(
        self, url: str, runtime_dir: Path, data_dir: Path, key: str, store: ConversationStore
    ) -> None:
        self.url = url
        self.store = store
        self.runtime_dir = runtime_dir
        self.data_dir = data_dir
        self.key = key

    def client(
        self, key: str | None = "default", headers: dict[str, str] | None = None
    ) -> httpx.AsyncClient:
        """A client sending ``key`` (this gateway's own by default; None: no key)."""
        all_headers = dict(headers or {})
        if key is not None:
            all_headers["Authorization"] = f"Bearer {self.key if key == 'default' else key}"
        return httpx.AsyncClient(base_url=self.url, headers=all_headers, timeout=30)

    def conversation(self, conversation_id: str) -> list[StoredMessage]:
        """What the store holds, once the writes queued so far are done (answers do not
        wait for their conversation to be written)."""
        self.store.drain()
        return read_conversation(self.data_dir / DATABASE_FILE, conversation_id)


GatewayFactory = Callable[..., AbstractContextManager[Gateway]]


@pytest.fixture
def upstream() -> Iterator[OpenAIUpstream]:
    with openai_upstream() as server:
        yield server


@pytest.fixture
def gateway_factory(tmp_path: Path) -> GatewayFactory:
    """``with gateway_factory(platform_models_url=..., env={...}) as gw``: a running gateway."""
    counter = iter(range(1000))

    @contextmanager
    def start(
        platform_models_url: str | None = None,
        env: dict[str, str] | None = None,
        poll_interval: float = 0.05,
        budget: Budget | None = None,
    ) -> Iterator[Gateway]:
        n = next(counter)
        runtime_dir = tmp_path / f"run-{n}"
        data_dir = tmp_path / f"data-{n}"
        runtime_dir.mkdir()
        key = new_key()
        write_bundle(runtime_dir, [key], platform_models_url, budget)
        settings = load_settings(env or {})
        bundles = BundleSource(
            runtime_dir / BUNDLE_FILE,
            msgspec.json.decode((runtime_dir / BUNDLE_FILE).read_bytes(), type=GatewayBundle),
            interval=poll_interval,
        )
        store = ConversationStore(data_dir / DATABASE_FILE)
        app = create_app(settings, bundles, store, ModelClient(settings))
        with serve_in_thread(app, lifespan="on") as server:
            yield Gateway(server.url, runtime_dir, data_dir, key, store)

    return start


@pytest.fixture
def gateway(gateway_factory: GatewayFactory, upstream: OpenAIUpstream) -> Iterator[Gateway]:
    """A gateway whose bundle points at the upstream double."""
    with gateway_factory(platform_models_url=upstream.url) as gw:
        yield gw


def problem_shape(body: dict[str, Any], status: int, code: str) -> None:
    """Assert ``body`` is both an RFC 9457 problem and an OpenAI error."""
    assert body["status"] == status
    assert body["type"].startswith("https://tenantry.dev/problems/") or body["type"] == (
        "about:blank"
    )
    assert body["title"]
    assert body["detail"]
    assert body["error"]["message"] == body["detail"]
    assert body["error"]["code"] == code
    assert body["error"]["type"]
