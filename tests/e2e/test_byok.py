"""Bring-your-own-key end to end: a tenant stores its OpenAI and Anthropic keys through the
API, and within seconds, without a restart, its gateway lists their models as
``byok/<provider>/<model>`` and answers with them; a fallback chain reaches the platform
when the tenant's own key is refused; deleting the key takes its models away."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.doubles.anthropic_upstream import AnthropicUpstream, anthropic_upstream
from tests.doubles.openai_upstream import OpenAIUpstream, openai_upstream
from tests.e2e.conftest import ControlPlaneProcess
from tests.e2e.test_embedded_default import wait_running
from tests.waiting import eventually_sync

pytestmark = pytest.mark.slow

OPENAI_KEY = "sk-byok-openai-key-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-byok-key-0123456789abcdef"


@pytest.fixture
def providers() -> Iterator[tuple[OpenAIUpstream, AnthropicUpstream]]:
    with (
        openai_upstream(["gpt-byok"]) as openai,
        anthropic_upstream([ANTHROPIC_KEY], ["claude-byok"]) as anthropic,
    ):
        openai.api_keys = {OPENAI_KEY}
        yield openai, anthropic


@pytest.fixture
def byok_control_plane(
    tmp_path: Path, upstream_url: str, providers: tuple[OpenAIUpstream, AnthropicUpstream]
) -> Iterator[ControlPlaneProcess]:
    openai, anthropic = providers
    env = {key: value for key, value in os.environ.items() if not key.startswith("TENANTRY_")}
    env.update(
        TENANTRY_PLATFORM_MODELS_URL=upstream_url,
        TENANTRY_OPENAI_API_BASE=openai.url,
        TENANTRY_ANTHROPIC_API_BASE=anthropic.base,
        TENANTRY_RESYNC_INTERVAL="0.5",
    )
    cp = ControlPlaneProcess(tmp_path / "data", env)
    cp.start()
    yield cp
    cp.stop()


def models(endpoint: str, key: str) -> list[str]:
    response = httpx.get(
        f"{endpoint}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["data"]]


def chat(endpoint: str, key: str, model: str, text: str) -> httpx.Response:
    return httpx.post(
        f"{endpoint}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": text}]},
        timeout=30,
    )


def reply_text(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def test_stored_keys_bring_their_models_without_a_restart(
    byok_control_plane: ControlPlaneProcess, providers: tuple[OpenAIUpstream, AnthropicUpstream]
) -> None:
    openai, anthropic = providers
    with byok_control_plane.client() as client:
        created = client.post("/api/v1/tenants", json={"slug": "byok"}).json()
        key = created["gateway_key"]["key"]
        endpoint = wait_running(client, "byok")["endpoint"]
        pid_before = byok_control_plane.all_gateway_pids()[created["id"]]
        assert models(endpoint, key) == ["stub-model"], "the platform's models only, at first"

        for provider, value in (("openai", OPENAI_KEY), ("anthropic", ANTHROPIC_KEY)):
            stored = client.put(
                f"/api/v1/tenants/byok/credentials/{provider}", json={"api_key": value}
            )
            assert stored.status_code in (200, 201), stored.text

        def listed() -> list[str] | None:
            ids = models(endpoint, key)
            return ids if "byok/anthropic/claude-byok" in ids else None

        ids = eventually_sync(listed, timeout=30, what="BYOK models listed")
        assert ids == ["stub-model", "byok/openai/gpt-byok", "byok/anthropic/claude-byok"]
        assert reply_text(chat(endpoint, key, "byok/openai/gpt-byok", "hi")) == "echo: hi"
        [sent] = openai.requests_to("/v1/chat/completions")
        assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
        assert sent.body["model"] == "gpt-byok"
        assert reply_text(chat(endpoint, key, "byok/anthropic/claude-byok", "hey")) == "echo: hey"
        assert anthropic.messages()[-1].body["model"] == "claude-byok"
        assert byok_control_plane.all_gateway_pids()[created["id"]] == pid_before, "no restart"

        # The key is deleted: its models go, and asking for one says why.
        assert client.delete("/api/v1/tenants/byok/credentials/openai").status_code == 204

        def gone() -> bool:
            return not any(i.startswith("byok/openai/") for i in models(endpoint, key))

        eventually_sync(gone, timeout=30, what="OpenAI models gone")
        refused = chat(endpoint, key, "byok/openai/gpt-byok", "hi")
        assert refused.status_code == 403
        assert "no openai credential" in refused.json()["error"]["message"]
        assert OPENAI_KEY not in refused.text
