"""Either HTTP client (``TENANTRY_GATEWAY_UPSTREAM_CLIENT``) carries the platform's calls
with the same behaviour: answers relayed, streams passed through and closed, failures named
alike. The upstream double sees which client called it by its ``user-agent``."""

from __future__ import annotations

import json

import pytest

from tests.doubles.openai_upstream import OpenAIUpstream
from tests.integration.gateway.conftest import (
    CHAT_BODY,
    GatewayFactory,
    problem_shape,
    unused_port_url,
)
from tests.waiting import eventually

USER_AGENTS = {"aiohttp": "aiohttp/", "httpx": "python-httpx/"}

pytestmark = pytest.mark.parametrize("client", sorted(USER_AGENTS))


def env(client: str) -> dict[str, str]:
    return {"TENANTRY_GATEWAY_UPSTREAM_CLIENT": client}


async def test_a_completion_and_a_stream_are_relayed_by_the_chosen_client(
    gateway_factory: GatewayFactory, upstream: OpenAIUpstream, client: str
) -> None:
    body = {**CHAT_BODY, "messages": [{"role": "user", "content": "a b c"}]}
    with gateway_factory(platform_models_url=upstream.url, env=env(client)) as gw:
        async with gw.client() as http:
            plain = await http.post("/v1/chat/completions", json=body)
            async with http.stream(
                "POST", "/v1/chat/completions", json={**body, "stream": True}
            ) as streamed:
                lines = [line async for line in streamed.aiter_lines()]
            models = await http.get("/v1/models")
    assert plain.status_code == 200, plain.text
    assert plain.json()["choices"][0]["message"]["content"] == "echo: a b c"
    assert streamed.status_code == 200
    payloads = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    pieces = [json.loads(p)["choices"][0]["delta"].get("content") or "" for p in payloads[:-1]]
    assert "".join(pieces) == "echo: a b c"
    assert [m["id"] for m in models.json()["data"]] == ["stub-model"]
    calls = upstream.requests_to("/v1/chat/completions")
    assert len(calls) == 2
    for call in [*calls, *upstream.requests_to("/v1/models")]:
        assert USER_AGENTS[client] in call.headers["user-agent"], call.headers
    assert calls[0].headers["accept-encoding"] == "identity"


async def test_upstream_errors_pass_through_with_their_retry_after(
    gateway_factory: GatewayFactory, upstream: OpenAIUpstream, client: str
) -> None:
    upstream.failures = [(429, "30")]
    with gateway_factory(platform_models_url=upstream.url, env=env(client)) as gw:
        async with gw.client() as http:
            limited = await http.post("/v1/chat/completions", json=CHAT_BODY)
            upstream.failures = [(400, None)]
            refused = await http.post("/v1/chat/completions", json={**CHAT_BODY, "stream": True})
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "30"
    assert limited.json()["error"]["code"] == "stub_429"
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "stub_400"


async def test_a_client_that_goes_away_mid_stream_closes_the_upstream_request(
    gateway_factory: GatewayFactory, upstream: OpenAIUpstream, client: str
) -> None:
    upstream.chunk_delay = 0.2
    words = " ".join(f"w{n}" for n in range(100))
    body = {**CHAT_BODY, "stream": True, "messages": [{"role": "user", "content": words}]}
    with gateway_factory(platform_models_url=upstream.url, env=env(client)) as gw:
        async with gw.client() as http, http.stream("POST", "/v1/chat/completions", json=body) as r:
            async for line in r.aiter_lines():
                if '"content": "echo: "' in line:
                    break

        async def upstream_saw_it() -> bool:
            return upstream.stream_disconnects == 1

        await eventually(upstream_saw_it, timeout=10, what="the upstream request to be closed")
    assert upstream.streams_completed == 0


async def test_a_stream_the_model_breaks_off_ends_with_an_error_event(
    gateway_factory: GatewayFactory, upstream: OpenAIUpstream, client: str
) -> None:
    upstream.cut_stream_after = 2
    with gateway_factory(platform_models_url=upstream.url, env=env(client)) as gw:
        async with (
            gw.client() as http,
            http.stream("POST", "/v1/chat/completions", json={**CHAT_BODY, "stream": True}) as r,
        ):
            payloads = [line async for line in r.aiter_lines() if line.startswith("data: ")]
    error = json.loads(payloads[-1].removeprefix("data: "))["error"]
    assert error["code"] == "upstream_unreachable"
    assert "broke off its answer" in error["message"]


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_an_unreachable_upstream_is_a_502_naming_the_cause(
    gateway_factory: GatewayFactory, client: str, scheme: str
) -> None:
    dead = unused_port_url().replace("http://", f"{scheme}://")
    with gateway_factory(platform_models_url=dead, env=env(client)) as gw:
        async with gw.client() as http:
            response = await http.post("/v1/chat/completions", json=CHAT_BODY)
    assert response.status_code == 502
    problem_shape(response.json(), 502, "upstream_unreachable")
    assert "is unreachable: ConnectError" in response.json()["detail"]
    assert dead.removesuffix("/v1") in response.json()["detail"]


async def test_tls_is_spoken_to_an_https_endpoint(
    gateway_factory: GatewayFactory, upstream: OpenAIUpstream, client: str
) -> None:
    https = upstream.url.replace("http://", "https://")
    with gateway_factory(platform_models_url=https, env=env(client)) as gw:
        async with gw.client() as http:
            response = await http.post("/v1/chat/completions", json=CHAT_BODY)
    assert response.status_code == 502
    assert "SSL" in response.json()["detail"], response.json()["detail"]
    assert upstream.requests_to("/v1/chat/completions") == []
