"""The gateway app, served over HTTP, against the OpenAI-compatible upstream double."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.doubles.openai_upstream import OpenAIUpstream
from tests.integration.gateway.conftest import (
    CHAT_BODY,
    TENANT_ID,
    Gateway,
    GatewayFactory,
    problem_shape,
)
from tests.waiting import eventually

CONVERSATION = "X-Tenantry-Conversation"


def sse_payloads(lines: list[str]) -> list[str]:
    return [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]


async def test_probes_need_no_key_and_readyz_names_the_tenant(gateway: Gateway) -> None:
    async with gateway.client(key=None) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "tenant_id": TENANT_ID, "credentials": []}


async def test_a_chat_completion_is_relayed_and_remembered(
    gateway: Gateway, upstream: OpenAIUpstream
) -> None:
    async with gateway.client() as client:
        first = await client.post("/v1/chat/completions", json=CHAT_BODY)
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"] == {"role": "assistant", "content": "echo: hello"}
        assert body["usage"]["total_tokens"] > 0
        conversation = first.headers[CONVERSATION]
        assert conversation

        stored = gateway.conversation(conversation)
        assert [(m.position, m.role) for m in stored] == [(0, "user"), (1, "assistant")]
        assert stored[0].message == {"role": "user", "content": "hello"}
        assert stored[1].message["content"] == "echo: hello"

        # The next turn carries the history; only the new user message and the reply are kept.
        follow_up = {
            "model": "stub-model",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "echo: hello"},
                {"role": "user", "content": "and again"},
            ],
        }
        second = await client.post(
            "/v1/chat/completions", json=follow_up, headers={CONVERSATION: conversation}
        )
        assert second.status_code == 200, second.text
        assert second.headers[CONVERSATION] == conversation

    stored = gateway.conversation(conversation)
    assert [(m.position, m.role) for m in stored] == [
        (0, "user"),
        (1, "assistant"),
        (2, "user"),
        (3, "assistant"),
    ]
    assert stored[2].message == {"role": "user", "content": "and again"}
    assert stored[3].message["content"] == "echo: and again"
    assert len(upstream.requests_to("/v1/chat/completions")) == 2


async def test_a_new_conversation_named_by_the_client_keeps_every_message(
    gateway: Gateway,
) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "echo: one"},
        {"role": "user", "content": "two"},
    ]
    async with gateway.client() as client:
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "stub-model", "messages": messages},
            headers={CONVERSATION: "client-chosen.1"},
        )
    assert response.status_code == 200, response.text
    assert response.headers[CONVERSATION] == "client-chosen.1"
    stored = gateway.conversation("client-chosen.1")
    assert [m.message for m in stored[:4]] == messages
    assert stored[4].message["content"] == "echo: two"


async def test_a_streamed_chat_passes_chunks_through_and_stores_the_reply(
    gateway: Gateway,
) -> None:
    body = {**CHAT_BODY, "stream": True, "messages": [{"role": "user", "content": "a b c"}]}
    async with (
        gateway.client() as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        conversation = response.headers[CONVERSATION]
        lines = [line async for line in response.aiter_lines()]
    payloads = sse_payloads(lines)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    pieces = [c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]]
    assert len([p for p in pieces if p]) == 4, pieces
    assert "".join(pieces) == "echo: a b c"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    # Queued before [DONE] went out, so it is there once the queued writes are done.
    stored = gateway.conversation(conversation)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].message == {"role": "assistant", "content": "echo: a b c"}


async def test_streamed_chunks_arrive_while_the_upstream_is_still_sending(
    gateway: Gateway, upstream: OpenAIUpstream
) -> None:
    upstream.chunk_delay = 0.3
    body = {**CHAT_BODY, "stream": True, "messages": [{"role": "user", "content": "x y z"}]}
    async with (
        gateway.client() as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        lines = response.aiter_lines()
        async for line in lines:
            if line.startswith("data: ") and '"content": "echo: "' in line:
                break
        assert upstream.streams_completed == 0, "the gateway must not buffer the whole stream"
        rest = [line async for line in lines]
    assert sse_payloads(rest)[-1] == "[DONE]"
    assert upstream.streams_completed == 1


async def test_a_client_that_goes_away_mid_stream_closes_the_upstream_request(
    gateway: Gateway, upstream: OpenAIUpstream
) -> None:
    upstream.chunk_delay = 0.2
    words = " ".join(f"w{n}" for n in range(100))
    body = {**CHAT_BODY, "stream": True, "messages": [{"role": "user", "content": words}]}
    async with (
        gateway.client() as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        conversation = response.headers[CONVERSATION]
        async for line in response.aiter_lines():
            if '"content": "echo: "' in line:
                break
    # Leaving the block closed the connection halfway through the stream.

    async def upstream_saw_it() -> bool:
        return upstream.stream_disconnects == 1

    await eventually(upstream_saw_it, timeout=10, what="the upstream request to be closed")
    assert upstream.streams_completed == 0
    assert gateway.conversation(conversation) == [], "an abandoned reply is not stored"


async def test_a_stream_the_model_breaks_off_ends_with_an_error_event(
    gateway: Gateway, upstream: OpenAIUpstream
) -> None:
    upstream.cut_stream_after = 2
    body = {**CHAT_BODY, "stream": True}
    async with (
        gateway.client() as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        conversation = response.headers[CONVERSATION]
        payloads = sse_payloads([line async for line in response.aiter_lines()])
        metrics = (await client.get("/metrics")).text
    assert "[DONE]" not in payloads
    assert len(payloads) == 3, payloads
    error = json.loads(payloads[-1])["error"]
    assert error["code"] == "upstream_unreachable"
    assert "broke off" in error["message"]
    assert gateway.conversation(conversation) == [], "a broken reply is not stored"
    assert 'tenant_gateway_chat_completions_total{outcome="broken",stream="true"} 1.0' in metrics


async def test_unknown_fields_such_as_tools_reach_the_model_untouched(
    gateway: Gateway, upstream: OpenAIUpstream
) -> None:
    body: dict[str, Any] = {
        "model": "stub-model",
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather in a city",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                },
            }
        ],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "temperature": 0.2,
        "x_vendor_extension": {"nested": [1, 2, 3]},
    }
    async with gateway.client() as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    (received,) = upstream.requests_to("/v1/chat/completions")
    assert received.body == body
    assert received.method == "POST"
    assert "authorization" not in received.headers, "the tenant's key stays with the gateway"


async def test_requests_without_a_valid_key_are_refused(gateway: Gateway) -> None:
    attempts = [
        gateway.client(key=None),
        gateway.client(key="tgk_wrong"),
        gateway.client(key=None, headers={"Authorization": f"Basic {gateway.key}"}),
    ]
    for client in attempts:
        async with client:
            chat = await client.post("/v1/chat/completions", json=CHAT_BODY)
            models = await client.get("/v1/models")
        for response in (chat, models):
            assert response.status_code == 401
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers["www-authenticate"].startswith("Bearer")
            problem_shape(response.json(), 401, "invalid_api_key")


async def test_no_model_endpoint_answers_503_as_problem_and_openai_error(
    gateway_factory: GatewayFactory,
) -> None:
    with gateway_factory(platform_models_url=None) as gw:
        async with gw.client() as client:
            chat = await client.post("/v1/chat/completions", json=CHAT_BODY)
            models = await client.get("/v1/models")
    assert chat.status_code == 503
    assert chat.headers["content-type"].startswith("application/problem+json")
    assert chat.json() == {
        "type": "https://tenantry.dev/problems/no-model-configured",
        "title": "No model configured",
        "status": 503,
        "detail": "no model configured for this tenant",
        "error": {
            "message": "no model configured for this tenant",
            "type": "service_unavailable",
            "code": "no_model_configured",
        },
    }
    assert models.status_code == 200
    assert models.json() == {"object": "list", "data": []}


async def test_upstream_errors_are_passed_through(
    gateway: Gateway, upstream: OpenAIUpstream
) -> None:
    upstream.error_status = 429
    async with gateway.client() as client:
        plain = await client.post("/v1/chat/completions", json=CHAT_BODY)
        streamed = await client.post("/v1/chat/completions", json={**CHAT_BODY, "stream": True})
    for response in (plain, streamed):
        assert response.status_code == 429
        assert response.json() == {
            "error": {
                "message": "stub error 429",
                "type": "invalid_request_error",
                "param": None,
                "code": "stub_429",
            }
        }
    assert gateway.conversation(plain.headers.get(CONVERSATION, "none")) == []


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_an_unreachable_upstream_is_a_502_naming_the_cause(
    gateway_factory: GatewayFactory, scheme: str
) -> None:
    from tests.integration.gateway.conftest import unused_port_url

    dead = unused_port_url().replace("http://", f"{scheme}://")
    with gateway_factory(platform_models_url=dead) as gw:
        async with gw.client() as client:
            plain = await client.post("/v1/chat/completions", json=CHAT_BODY)
            streamed = await client.post("/v1/chat/completions", json={**CHAT_BODY, "stream": True})
            models = await client.get("/v1/models")
    for response in (plain, streamed):
        assert response.status_code == 502
        body = response.json()
        problem_shape(body, 502, "upstream_unreachable")
        assert "ConnectError" in body["detail"], body["detail"]
        assert dead.removesuffix("/v1") in body["detail"]
    assert models.status_code == 502
    problem_shape(models.json(), 502, "upstream_unreachable")


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/v1", "http://exa mple/v1", "http://:0/v1", "http://h:99999/v1"]
)
async def test_an_unusable_endpoint_url_in_the_bundle_is_a_502(
    gateway_factory: GatewayFactory, url: str
) -> None:
    with gateway_factory(platform_models_url=url) as gw:
        async with gw.client() as client:
            response = await client.post("/v1/chat/completions", json=CHAT_BODY)
    assert response.status_code == 502, response.text
    problem_shape(response.json(), 502, "upstream_unreachable")


async def test_an_https_endpoint_is_spoken_to_over_tls(
    gateway_factory: GatewayFactory, upstream: OpenAIUpstream
) -> None:
    """The plain-http double cannot answer a TLS handshake: the gateway really tried TLS."""
    with gateway_factory(platform_models_url=upstream.url.replace("http://", "https://")) as gw:
        async with gw.client() as client:
            response = await client.post("/v1/chat/completions", json=CHAT_BODY)
    assert response.status_code == 502
    problem_shape(response.json(), 502, "upstream_unreachable")
    assert "SSL" in response.json()["detail"] or "TLS" in response.json()["detail"]
    assert upstream.requests_to("/v1/chat/completions") == []


async def test_bad_bodies_are_refused_before_reaching_the_model(
    gateway: Gateway, upstream: OpenAIUpstream
) -> None:
    bad: list[bytes] = [
        b"not json",
        b"[1, 2]",
        b'{"messages": [{"role": "user", "content": "hi"}]}',
        b'{"model": "m", "messages": []}',
        b'{"model": "m", "messages": [{"content": "no role"}]}',
        b'{"model": 7, "messages": [{"role": "user", "content": "hi"}]}',
    ]
    async with gateway.client() as client:
        for content in bad:
            response = await client.post(
                "/v1/chat/completions",
                content=content,
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 400, content
            problem_shape(response.json(), 400, "invalid_request")
        bad_conversation = await client.post(
            "/v1/chat/completions", json=CHAT_BODY, headers={CONVERSATION: "../etc"}
        )
    assert bad_conversation.status_code == 400
    assert CONVERSATION in bad_conversation.json()["detail"]
    assert upstream.requests_to("/v1/chat/completions") == []


async def test_a_new_key_is_accepted_and_a_revoked_one_refused_without_a_restart(
    gateway_factory: GatewayFactory, upstream: OpenAIUpstream
) -> None:
    from tests.integration.gateway.conftest import new_key, write_bundle

    with gateway_factory(platform_models_url=upstream.url, poll_interval=0.5) as gw:
        old_key, fresh_key = gw.key, new_key()
        async with gw.client(key=old_key) as old, gw.client(key=fresh_key) as fresh:
            assert (await old.get("/v1/models")).status_code == 200
            assert (await fresh.get("/v1/models")).status_code == 401

            write_bundle(gw.runtime_dir, [fresh_key], upstream.url)

            async def fresh_accepted() -> bool:
                return (await fresh.get("/v1/models")).status_code == 200

            await eventually(fresh_accepted, timeout=10, what="the new key to be accepted")
            assert (await old.get("/v1/models")).status_code == 401
            chat = await fresh.post("/v1/chat/completions", json=CHAT_BODY)
            assert chat.status_code == 200, chat.text


async def test_models_are_listed_from_the_upstream_and_cached(
    gateway: Gateway, upstream: OpenAIUpstream
) -> None:
    upstream.models = ["stub-model", "other-model"]
    async with gateway.client() as client:
        first = await client.get("/v1/models")
        second = await client.get("/v1/models")
    assert first.status_code == 200
    assert first.json() == {
        "object": "list",
        "data": [
            {"id": "stub-model", "object": "model", "created": 1_700_000_000, "owned_by": "stub"},
            {"id": "other-model", "object": "model", "created": 1_700_000_000, "owned_by": "stub"},
        ],
    }
    assert second.json() == first.json()
    assert len(upstream.requests_to("/v1/models")) == 1, "the list is cached"


async def test_a_failing_model_list_is_a_502(gateway: Gateway, upstream: OpenAIUpstream) -> None:
    upstream.error_status = 500
    async with gateway.client() as client:
        response = await client.get("/v1/models")
    assert response.status_code == 502
    problem_shape(response.json(), 502, "upstream_bad_answer")


async def test_the_environment_names_the_model_endpoint_only_when_the_bundle_does_not(
    gateway_factory: GatewayFactory, upstream: OpenAIUpstream
) -> None:
    from tests.integration.gateway.conftest import unused_port_url

    env = {"TENANTRY_PLATFORM_MODELS_URL": upstream.url}
    with gateway_factory(platform_models_url=None, env=env) as gw:
        async with gw.client() as client:
            assert (await client.post("/v1/chat/completions", json=CHAT_BODY)).status_code == 200
    env = {"TENANTRY_PLATFORM_MODELS_URL": unused_port_url()}
    with gateway_factory(platform_models_url=upstream.url, env=env) as gw:
        async with gw.client() as client:
            assert (await client.post("/v1/chat/completions", json=CHAT_BODY)).status_code == 200
    assert len(upstream.requests_to("/v1/chat/completions")) == 2


async def test_metrics_count_requests_completions_and_upstream_latency(gateway: Gateway) -> None:
    async with gateway.client() as client:
        assert (await client.post("/v1/chat/completions", json=CHAT_BODY)).status_code == 200
        assert (await client.post("/v1/chat/completions", content=b"{}")).status_code == 400
        metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8"
    text = metrics.text
    assert (
        'tenant_gateway_http_requests_total{method="POST",route="/v1/chat/completions",'
        'status="200"} 1.0' in text
    )
    assert (
        'tenant_gateway_http_requests_total{method="POST",route="/v1/chat/completions",'
        'status="400"} 1.0' in text
    )
    assert 'tenant_gateway_chat_completions_total{outcome="ok",stream="false"} 1.0' in text
    assert (
        'tenant_gateway_upstream_latency_seconds_count{endpoint="chat",provider="platform"} 1.0'
        in text
    )
    assert "tenant_gateway_keys 1.0" in text


async def test_unknown_routes_answer_a_problem(gateway: Gateway) -> None:
    async with gateway.client() as client:
        missing = await client.get("/v1/nothing")
        wrong_method = await client.get("/v1/chat/completions")
    assert missing.status_code == 404
    problem_shape(missing.json(), 404, "not_found")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"].startswith("application/problem+json")


def test_two_apps_live_in_one_process(gateway_factory: GatewayFactory) -> None:
    """Each app has its own metrics registry, so building several does not clash."""
    with gateway_factory() as one, gateway_factory() as two:
        for gw in (one, two):
            response = httpx.get(f"{gw.url}/readyz", timeout=10)
            assert response.status_code == 200


async def test_metrics_count_tokens_time_to_first_token_and_failures_by_provider(
    gateway: Gateway, upstream: OpenAIUpstream
) -> None:
    async with gateway.client() as client:
        plain = await client.post("/v1/chat/completions", json=CHAT_BODY)
        assert plain.status_code == 200
        usage = plain.json()["usage"]
        streamed = {**CHAT_BODY, "stream": True, "stream_options": {"include_usage": True}}
        async with client.stream("POST", "/v1/chat/completions", json=streamed) as response:
            assert response.status_code == 200
            _ = [line async for line in response.aiter_lines()]
        upstream.failures = [(500, None)] * 3
        failed = await client.post("/v1/chat/completions", json=CHAT_BODY)
        assert failed.status_code == 500
        text = (await client.get("/metrics")).text

    def value(sample: str) -> float:
        [line] = [x for x in text.splitlines() if x.startswith(sample + " ")]
        return float(line.rsplit(" ", 1)[1])

    prompt = 'tenant_gateway_tokens_total{byok="false",kind="prompt",provider="platform"}'
    completion = 'tenant_gateway_tokens_total{byok="false",kind="completion",provider="platform"}'
    assert value(prompt) == 2 * usage["prompt_tokens"], "both answers' prompt tokens"
    assert value(completion) == 2 * usage["completion_tokens"]
    assert value('tenant_gateway_time_to_first_token_seconds_count{provider="platform"}') == 1
    assert value('tenant_gateway_completion_seconds_count{provider="platform",stream="true"}') == 1
    assert value('tenant_gateway_completion_seconds_count{provider="platform",stream="false"}') == 1
    errors = 'tenant_gateway_upstream_errors_total{provider="platform",reason="server_error"}'
    assert value(errors) == 3, "the first attempt and its two retries"
