"""A gateway out of pooled connections is overloaded itself: the provider must not be made to
rest for it (with either client), or every request would get 503 for the cooldown."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from tenant_gateway.contract import GatewayBundle
from tenant_gateway.models import ModelClient, ModelRouter, UpstreamUnavailable
from tenant_gateway.settings import GatewaySettings
from tests.doubles.openai_upstream import openai_upstream


class NoCredentials:
    providers: list[str] = []

    def get(self, provider: str) -> dict[str, str]:
        raise AssertionError(f"no credential expected, asked for {provider}")


def body(stream: bool) -> bytes:
    return json.dumps(
        {"model": "stub-model", "stream": stream, "messages": [{"role": "user", "content": "a b"}]}
    ).encode()


@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
async def test_waiting_for_a_pooled_connection_does_not_rest_the_provider(client: str) -> None:
    settings = GatewaySettings(
        upstream_client=client,
        upstream_max_connections=1,
        upstream_connect_timeout=0.3,
        upstream_retries=0,
        cooldown_failures=1,
    )
    with openai_upstream(chunk_delay=0.5) as upstream:
        bundle = GatewayBundle(
            tenant_id="t",
            tenant_slug="t",
            keys=[],
            key_digest_key=base64.b64encode(bytes(32)).decode(),
            platform_models_url=upstream.url,
        )
        models = ModelClient(settings)
        await models.start()
        router = ModelRouter(settings, lambda: bundle, NoCredentials(), models)
        try:
            # A slow stream holds the only connection...
            held, _ = await router.stream(body(True), "stub-model")
            chunks = held.chunks()
            await anext(chunks)
            # ...so the next call cannot get one in time: the gateway's own overload.
            with pytest.raises(UpstreamUnavailable) as waited:
                await router.complete(body(False), "stub-model")
            assert waited.value.provider_fault is False
            assert router.cooldowns.resting(f"platform {upstream.url}") == 0, "not resting"
            async for _ in chunks:
                pass
            await held.aclose()
            reply, _ = await asyncio.wait_for(router.complete(body(False), "stub-model"), 10)
            assert reply.status == 200
        finally:
            await models.close()
