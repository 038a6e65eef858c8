"""The gateway's model router against real HTTP doubles of the platform fleet, OpenAI and
Anthropic on 127.0.0.1: names, BYOK, translation, retries, fallbacks and cooldowns."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from tenant_gateway.contract import GatewayBundle, PlatformModel
from tenant_gateway.credentials import CredentialsSealed
from tenant_gateway.models import (
    ModelClient,
    ModelRouter,
    ProvidersCoolingDown,
    UnknownModel,
    UpstreamFailed,
    UpstreamUnavailable,
)
from tenant_gateway.settings import GatewaySettings
from tests.doubles.anthropic_upstream import AnthropicUpstream, anthropic_upstream
from tests.doubles.openai_upstream import OpenAIUpstream, openai_upstream

OPENAI_KEY = "sk-test-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-test-0123456789"
COMPATIBLE_KEY = "compat-0123456789"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


class HeldCredentials:
    """The tenant's unsealed credentials, as the gateway's credential keeper holds them."""

    def __init__(self, credentials: dict[str, dict[str, str]]) -> None:
        self.credentials = credentials

    @property
    def providers(self) -> list[str]:
        return sorted(self.credentials)

    def get(self, provider: str) -> Mapping[str, str]:
        if provider not in self.credentials:
            raise CredentialsSealed(f"this tenant has no {provider} credential")
        return self.credentials[provider]


@dataclass
class Clock:
    """Time the router sees; waits advance it instead of passing."""

    now: float = 1000.0
    waits: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@dataclass
class World:
    platform: OpenAIUpstream
    openai: OpenAIUpstream
    compatible: OpenAIUpstream
    anthropic: AnthropicUpstream
    bundle: GatewayBundle
    credentials: HeldCredentials
    clock: Clock
    router: ModelRouter


@pytest.fixture
def upstreams() -> Iterator[
    tuple[OpenAIUpstream, OpenAIUpstream, OpenAIUpstream, AnthropicUpstream]
]:
    with (
        openai_upstream(["llama-3"]) as platform,
        openai_upstream(["gpt-test", "gpt-other"]) as openai,
        openai_upstream(["local-model"]) as compatible,
        anthropic_upstream([ANTHROPIC_KEY], ["claude-test-1"]) as anthropic,
    ):
        openai.api_keys = {OPENAI_KEY}
        compatible.api_keys = {COMPATIBLE_KEY}
        yield platform, openai, compatible, anthropic


@pytest.fixture
async def world(
    upstreams: tuple[OpenAIUpstream, OpenAIUpstream, OpenAIUpstream, AnthropicUpstream],
) -> AsyncIterator[World]:
    platform, openai, compatible, anthropic = upstreams
    bundle = GatewayBundle(
        tenant_id="t-1",
        tenant_slug="acme",
        keys=[],
        key_digest_key=base64.b64encode(bytes(32)).decode(),
        platform_models_url=platform.url,
        provider_bases={"openai": openai.url, "anthropic": anthropic.base},
    )
    credentials = HeldCredentials(
        {
            "openai": {"api_key": OPENAI_KEY},
            "anthropic": {"api_key": ANTHROPIC_KEY},
            "openai_compatible": {"api_key": COMPATIBLE_KEY, "base_url": compatible.url},
        }
    )
    clock = Clock()
    settings = GatewaySettings(retry_backoff=0.1, cooldown_failures=3, cooldown_seconds=30.0)
    client = ModelClient(settings)
    await client.start()
    w = World(platform, openai, compatible, anthropic, bundle, credentials, clock, None)  # type: ignore[arg-type]
    w.router = ModelRouter(
        settings, lambda: w.bundle, credentials, client, clock=clock, sleep=clock.sleep
    )
    try:
        yield w
    finally:
        await client.close()


def body(model: str, text: str = "hello", **extra: Any) -> bytes:
    return json.dumps(
        {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    ).encode()


async def collect(stream: Any) -> bytes:
    try:
        return b"".join([chunk async for chunk in stream.chunks()])
    finally:
        await stream.aclose()


def events(raw: bytes) -> list[Any]:
    out: list[Any] = []
    for line in raw.decode().split("\n"):
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


# -- names --------------------------------------------------------------------------------


async def test_a_platform_name_goes_to_the_fleet_byte_for_byte(world: World) -> None:
    sent = body("llama-3", tools=TOOLS, tool_choice="auto", custom_field={"kept": True})
    reply, target = await world.router.complete(sent, "llama-3")
    assert (target.provider.kind, target.byok) == ("platform", False)
    assert json.loads(reply.content)["choices"][0]["message"]["content"] == "echo: hello"
    [seen] = world.platform.requests_to("/v1/chat/completions")
    assert seen.body == json.loads(sent), "unknown fields and tools reach the model untouched"
    assert "authorization" not in seen.headers, "the fleet gets no tenant key"


async def test_byok_openai_uses_the_tenants_key_and_the_providers_model_name(world: World) -> None:
    reply, target = await world.router.complete(
        body("byok/openai/gpt-test", tools=TOOLS), "byok/openai/gpt-test"
    )
    assert (target.provider.kind, target.byok, target.upstream_model) == (
        "openai",
        True,
        "gpt-test",
    )
    [seen] = world.openai.requests_to("/v1/chat/completions")
    assert seen.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert seen.body["model"] == "gpt-test"
    assert seen.body["tools"] == TOOLS
    assert json.loads(reply.content)["choices"][0]["message"]["content"] == "echo: hello"
    assert world.platform.requests_to("/v1/chat/completions") == []


async def test_byok_openai_compatible_uses_the_credentials_base_url(world: World) -> None:
    await world.router.complete(
        body("byok/openai_compatible/local-model"), "byok/openai_compatible/local-model"
    )
    [seen] = world.compatible.requests_to("/v1/chat/completions")
    assert seen.headers["authorization"] == f"Bearer {COMPATIBLE_KEY}"
    assert seen.body["model"] == "local-model"


async def test_aliases_resolve_and_circles_are_refused(world: World) -> None:
    world.bundle = msgspec.structs.replace(
        world.bundle,
        model_aliases={"default": "smart", "smart": "byok/openai/gpt-test", "a": "b", "b": "a"},
    )
    _, target = await world.router.complete(body("default"), "default")
    assert target.name == "byok/openai/gpt-test"
    with pytest.raises(UnknownModel, match="circle"):
        await world.router.complete(body("a"), "a")


async def test_unknown_names_and_missing_keys_say_why(world: World) -> None:
    with pytest.raises(UnknownModel, match="byok/<provider>/<model>"):
        world.router.chain("byok/mistral/large")
    world.credentials.credentials.pop("anthropic")
    with pytest.raises(CredentialsSealed, match="no anthropic credential"):
        world.router.chain("byok/anthropic/claude-test-1")
    world.bundle = msgspec.structs.replace(
        world.bundle,
        platform_models=[
            PlatformModel(name="llama", base_url=world.platform.url, served_model_name="llama-3")
        ],
    )
    with pytest.raises(UnknownModel, match="GET /v1/models"):
        world.router.chain("mystery")


async def test_a_catalog_model_is_served_under_its_served_name(world: World) -> None:
    world.bundle = msgspec.structs.replace(
        world.bundle,
        platform_models=[
            PlatformModel(name="llama", base_url=world.platform.url, served_model_name="llama-3")
        ],
    )
    await world.router.complete(body("llama"), "llama")
    [seen] = world.platform.requests_to("/v1/chat/completions")
    assert seen.body["model"] == "llama-3"


# -- Anthropic --------------------------------------------------------------------------------


async def test_anthropic_requests_and_answers_are_translated(world: World) -> None:
    sent = {
        "model": "byok/anthropic/claude-test-1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "call Paris"},
        ],
        "tools": TOOLS,
        "tool_choice": "required",
        "stop": "END",
        "temperature": 0.2,
    }
    reply, _ = await world.router.complete(json.dumps(sent).encode(), sent["model"])
    [seen] = world.anthropic.messages()
    assert seen.headers["x-api-key"] == ANTHROPIC_KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.body["model"] == "claude-test-1"
    assert seen.body["system"] == "Be brief."
    assert seen.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "call Paris"}]}
    ]
    assert seen.body["max_tokens"] > 0, "Anthropic requires max_tokens; the gateway supplies one"
    assert seen.body["tools"] == [
        {
            "name": "weather",
            "description": "Weather in a city",
            "input_schema": TOOLS[0]["function"]["parameters"],
        }
    ]
    assert seen.body["tool_choice"] == {"type": "any"}
    assert seen.body["stop_sequences"] == ["END"]
    assert seen.body["temperature"] == 0.2

    completion = json.loads(reply.content)
    assert completion["object"] == "chat.completion"
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_1"
    assert call["function"]["name"] == "weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert completion["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


async def test_a_tool_round_trip_is_sent_to_anthropic_as_tool_use_and_tool_result(
    world: World,
) -> None:
    sent = {
        "model": "byok/anthropic/claude-test-1",
        "messages": [
            {"role": "user", "content": "call Paris"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
            {"role": "user", "content": "thanks"},
        ],
    }
    reply, _ = await world.router.complete(json.dumps(sent).encode(), sent["model"])
    [seen] = world.anthropic.messages()
    assert seen.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "call Paris"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]
    assert json.loads(reply.content)["choices"][0]["message"]["content"] == "echo: thanks"


async def test_an_anthropic_stream_becomes_openai_chunks(world: World) -> None:
    sent = body(
        "byok/anthropic/claude-test-1",
        "call Rome",
        stream=True,
        tools=TOOLS,
        stream_options={"include_usage": True},
    )
    stream, _ = await world.router.stream(sent, "byok/anthropic/claude-test-1")
    assert stream.content_type.startswith("text/event-stream")
    got = events(await collect(stream))
    assert got[-1] == "[DONE]"
    chunks = got[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.strip() == "Let me check."
    calls = [
        tc
        for c in chunks
        if c["choices"]
        for tc in c["choices"][0]["delta"].get("tool_calls") or []
    ]
    assert calls[0]["id"] == "toolu_1"
    assert calls[0]["function"]["name"] == "weather"
    assert json.loads("".join(tc["function"]["arguments"] for tc in calls)) == {"city": "Rome"}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3


async def test_an_anthropic_stream_cut_short_is_an_error_not_a_silent_end(world: World) -> None:
    world.anthropic.cut_stream_after = 3
    stream, _ = await world.router.stream(
        body("byok/anthropic/claude-test-1", stream=True), "byok/anthropic/claude-test-1"
    )
    with pytest.raises(UpstreamUnavailable, match=r"broke off|before message_stop"):
        await collect(stream)


async def test_anthropic_errors_reach_the_client_in_openais_shape(world: World) -> None:
    world.anthropic.keys = {"another-key"}
    with pytest.raises(UpstreamFailed) as refused:
        await world.router.complete(
            body("byok/anthropic/claude-test-1"), "byok/anthropic/claude-test-1"
        )
    assert refused.value.status == 401
    error = json.loads(refused.value.content)["error"]
    assert error["type"] == "authentication_error"
    assert "invalid x-api-key" in error["message"]


# -- retries, fallbacks, cooldowns ------------------------------------------------------------


async def test_retry_after_is_honoured(world: World) -> None:
    world.openai.failures = [(429, "2"), (503, None)]
    reply, _ = await world.router.complete(body("byok/openai/gpt-test"), "byok/openai/gpt-test")
    assert reply.status == 200
    assert world.clock.waits == [2.0, 0.2], "Retry-After first, then the doubling backoff"
    assert len(world.openai.requests_to("/v1/chat/completions")) == 3


async def test_a_wait_longer_than_allowed_moves_on_to_the_fallback(world: World) -> None:
    world.bundle = msgspec.structs.replace(
        world.bundle, model_fallbacks={"byok/openai/gpt-test": ["llama-3"]}
    )
    world.openai.failures = [(429, "3600")]
    reply, target = await world.router.complete(
        body("byok/openai/gpt-test"), "byok/openai/gpt-test"
    )
    assert target.name == "llama-3"
    assert world.clock.waits == [], "an hour's Retry-After is not waited for"
    assert json.loads(reply.content)["choices"][0]["message"]["content"] == "echo: hello"


async def test_own_key_first_then_the_platform(world: World) -> None:
    world.bundle = msgspec.structs.replace(
        world.bundle,
        model_aliases={"default": "byok/openai/gpt-test"},
        model_fallbacks={"default": ["llama-3"]},
    )
    world.openai.api_keys = {"a-key-that-was-revoked"}
    _, target = await world.router.complete(body("default"), "default")
    assert target.name == "llama-3", "a refused key falls back"
    world.credentials.credentials.pop("openai")
    _, target = await world.router.complete(body("default"), "default")
    assert target.name == "llama-3", "a missing key falls back"


async def test_a_malformed_request_does_not_fall_back(world: World) -> None:
    world.bundle = msgspec.structs.replace(
        world.bundle, model_fallbacks={"byok/openai/gpt-test": ["llama-3"]}
    )
    world.openai.failures = [(400, None)]
    with pytest.raises(UpstreamFailed) as failed:
        await world.router.complete(body("byok/openai/gpt-test"), "byok/openai/gpt-test")
    assert failed.value.status == 400
    assert world.platform.requests_to("/v1/chat/completions") == []


async def test_a_failing_provider_rests_then_is_tried_again(world: World) -> None:
    world.bundle = msgspec.structs.replace(
        world.bundle, model_fallbacks={"byok/openai/gpt-test": ["llama-3"]}
    )
    world.openai.error_status = 500
    for _ in range(3):  # three failed requests in a row (each retried twice)
        _, target = await world.router.complete(
            body("byok/openai/gpt-test"), "byok/openai/gpt-test"
        )
        assert target.name == "llama-3"
    calls = len(world.openai.requests_to("/v1/chat/completions"))
    assert calls == 9
    _, target = await world.router.complete(body("byok/openai/gpt-test"), "byok/openai/gpt-test")
    assert target.name == "llama-3"
    assert len(world.openai.requests_to("/v1/chat/completions")) == calls, "resting: not called"

    world.bundle = msgspec.structs.replace(world.bundle, model_fallbacks={})
    with pytest.raises(ProvidersCoolingDown) as resting:
        await world.router.complete(body("byok/openai/gpt-test"), "byok/openai/gpt-test")
    assert 0 < resting.value.retry_after <= 30

    world.openai.error_status = None
    world.clock.now += 31
    _, target = await world.router.complete(body("byok/openai/gpt-test"), "byok/openai/gpt-test")
    assert target.name == "byok/openai/gpt-test"


async def test_the_platform_stream_is_retried_before_its_head_only(world: World) -> None:
    world.platform.failures = [(502, None)]
    stream, _ = await world.router.stream(body("llama-3", stream=True), "llama-3")
    got = events(await collect(stream))
    assert got[-1] == "[DONE]"
    assert len(world.platform.requests_to("/v1/chat/completions")) == 2


# -- the model list ---------------------------------------------------------------------------


async def test_models_of_the_platform_byok_providers_and_aliases_are_listed(world: World) -> None:
    world.bundle = msgspec.structs.replace(
        world.bundle, model_aliases={"default": "byok/anthropic/claude-test-1"}
    )
    listed = msgspec.to_builtins(await world.router.list_models())
    ids = [m["id"] for m in listed["data"]]
    assert ids == [
        "llama-3",
        "byok/openai/gpt-test",
        "byok/openai/gpt-other",
        "byok/anthropic/claude-test-1",
        "byok/openai_compatible/local-model",
        "default",
    ]
    [seen] = [r for r in world.anthropic.requests if r.path == "/v1/models"]
    assert seen.headers["x-api-key"] == ANTHROPIC_KEY


async def test_a_provider_that_cannot_list_is_left_out(world: World) -> None:
    world.openai.api_keys = {"another-key"}
    ids = [m.id for m in (await world.router.list_models()).data]
    assert "llama-3" in ids
    assert not any(i.startswith("byok/openai/") for i in ids)
    assert "byok/anthropic/claude-test-1" in ids


async def test_a_new_key_lists_its_models_without_waiting_for_the_cache(world: World) -> None:
    world.credentials.credentials.pop("openai")
    before = [m.id for m in (await world.router.list_models()).data]
    assert not any(i.startswith("byok/openai/") for i in before)
    world.credentials.credentials["openai"] = {"api_key": OPENAI_KEY}
    after = [m.id for m in (await world.router.list_models()).data]
    assert "byok/openai/gpt-test" in after
