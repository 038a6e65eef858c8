"""The inbound pipeline of channel messages, through a real gateway app over HTTP."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tenant_gateway.app import create_app
from tenant_gateway.channels.assistant import BUDGET_REPLY, RESET_REPLY
from tenant_gateway.channels.contract import (
    INBOUND_PATH,
    WEBHOOK_PATH,
    InboundMessage,
    OutboundReply,
)
from tenant_gateway.channels.outlets import ChannelOutlet
from tenant_gateway.channels.pipeline import (
    ChannelPipeline,
    WebhookAnswer,
    WebhookHandler,
    WebhookRequest,
)
from tenant_gateway.contract import BUNDLE_FILE, Budget, GatewayBundle, digest_gateway_key
from tenant_gateway.keys import BundleSource
from tenant_gateway.models import ModelClient
from tenant_gateway.settings import load_settings
from tenant_gateway.store import DATABASE_FILE, ConversationStore
from tests.doubles.http_server import serve_in_thread
from tests.doubles.openai_upstream import OpenAIUpstream
from tests.integration.gateway.conftest import DIGEST_KEY, new_key, problem_shape, write_bundle
from tests.waiting import eventually

INBOUND_KEY = "inbound-key-of-acme"


def enable_inbound(runtime_dir: Path, key: str | None) -> None:
    """Give the bundle in ``runtime_dir`` an inbound key digest (None: no inbound key)."""
    path = runtime_dir / BUNDLE_FILE
    bundle = msgspec.json.decode(path.read_bytes(), type=GatewayBundle)
    digest = None if key is None else digest_gateway_key(key, DIGEST_KEY)
    bundle = msgspec.structs.replace(bundle, inbound_key_digest=digest)
    path.write_bytes(msgspec.json.encode(bundle))


def inbound(
    message_id: str,
    text: str,
    *,
    peer: str = "peer-1",
    chat: str | None = None,
    channel: str = "irc",
    chat_type: str = "dm",
    mentioned: bool = False,
) -> dict[str, Any]:
    return {
        "channel": channel,
        "message_id": message_id,
        "chat_id": chat or f"chat-{peer}",
        "peer_id": peer,
        "chat_type": chat_type,
        "text": text,
        "mentioned": mentioned,
        "received_at": datetime.now(UTC).isoformat(),
    }


class RecordingSink:
    """A reply sink that records what it is handed; it fails the first ``failures`` times."""

    def __init__(self, failures: int = 0) -> None:
        self.replies: list[OutboundReply] = []
        self.failures = failures
        self.attempts = 0
        self._lock = threading.Lock()

    async def __call__(self, reply: OutboundReply) -> None:
        with self._lock:
            self.attempts += 1
            if self.failures:
                self.failures -= 1
                raise ConnectionError("the channel is down")
            self.replies.append(reply)

    def texts(self, chat_id: str) -> list[str]:
        with self._lock:
            return [r.text for r in self.replies if r.chat_id == chat_id]


class ChannelGateway:
    def __init__(self, url: str, sink: RecordingSink, upstream: OpenAIUpstream) -> None:
        self.url = url
        self.sink = sink
        self.upstream = upstream

    def client(self, key: str | None = INBOUND_KEY) -> httpx.AsyncClient:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def replies(self, chat_id: str, count: int) -> list[str]:
        async def probe() -> list[str] | None:
            texts = self.sink.texts(chat_id)
            return texts if len(texts) >= count else None

        return await eventually(probe, what=f"{count} replies in {chat_id}")

    def prompts(self) -> list[list[dict[str, Any]]]:
        return [r.body["messages"] for r in self.upstream.requests_to("/v1/chat/completions")]


ChannelFactory = Callable[..., AbstractContextManager[ChannelGateway]]


@pytest.fixture
def channel_gateway(tmp_path: Path, upstream: OpenAIUpstream) -> ChannelFactory:
    counter = iter(range(100))

    @contextmanager
    def start(
        env: dict[str, str] | None = None,
        sink: RecordingSink | None = None,
        inbound_key: str | None = INBOUND_KEY,
        budget: Budget | None = None,
        outlets: dict[str, ChannelOutlet] | None = None,
        webhooks: dict[str, WebhookHandler] | None = None,
    ) -> Iterator[ChannelGateway]:
        n = next(counter)
        runtime_dir, data_dir = tmp_path / f"run-{n}", tmp_path / f"data-{n}"
        runtime_dir.mkdir()
        write_bundle(runtime_dir, [new_key()], upstream.url, budget)
        enable_inbound(runtime_dir, inbound_key)
        settings = load_settings(env or {})
        bundle = msgspec.json.decode((runtime_dir / BUNDLE_FILE).read_bytes(), type=GatewayBundle)
        sink = sink or RecordingSink()
        app = create_app(
            settings,
            BundleSource(runtime_dir / BUNDLE_FILE, bundle),
            ConversationStore(data_dir / DATABASE_FILE),
            ModelClient(settings),
            reply_sink=sink,
        )
        pipeline: ChannelPipeline = app.state["channels"]
        for channel, outlet in (outlets or {}).items():
            pipeline.add_outlet(channel, outlet)
        pipeline.webhooks.update(webhooks or {})
        with serve_in_thread(app, lifespan="on") as server:
            yield ChannelGateway(server.url, sink, upstream)

    return start


NO_DAILY_RESET = {"TENANTRY_GATEWAY_SESSION_DAILY_RESET": "off"}
"""So no test straddles the daily reset of sessions."""


async def test_a_replayed_message_is_accepted_once_and_answered_once(
    channel_gateway: ChannelFactory,
) -> None:
    with channel_gateway(NO_DAILY_RESET) as gateway:
        async with gateway.client() as client:
            first = await client.post(INBOUND_PATH, json=inbound("m-1", "hello"))
            again = await client.post(INBOUND_PATH, json=inbound("m-1", "hello"))
        assert (first.status_code, first.json()) == (202, {"duplicate": False})
        assert (again.status_code, again.json()) == (200, {"duplicate": True})
        assert await gateway.replies("chat-peer-1", 1) == ["echo: hello"]
        # A later message of the chat is answered after it: the replay made no second reply.
        async with gateway.client() as client:
            await client.post(INBOUND_PATH, json=inbound("m-2", "later"))
        assert await gateway.replies("chat-peer-1", 2) == ["echo: hello", "echo: later"]
        assert gateway.sink.replies[0].in_reply_to == "m-1"


async def test_messages_of_one_session_are_answered_in_order_with_their_history(
    channel_gateway: ChannelFactory,
) -> None:
    with channel_gateway(NO_DAILY_RESET) as gateway:
        async with gateway.client() as client:
            for n in range(4):
                response = await client.post(INBOUND_PATH, json=inbound(f"m-{n}", f"word{n}"))
                assert response.status_code == 202
        assert await gateway.replies("chat-peer-1", 4) == [f"echo: word{n}" for n in range(4)]
        last = gateway.prompts()[-1]
        assert [m["content"] for m in last] == [
            "word0",
            "echo: word0",
            "word1",
            "echo: word1",
            "word2",
            "echo: word2",
            "word3",
        ]


async def _talk(gateway: ChannelGateway, **who: Any) -> None:
    async with gateway.client() as client:
        first = inbound("a-1", "alpha", peer="ann", **who)
        await client.post(INBOUND_PATH, json=first)
        await gateway.replies(first["chat_id"], 1)
        second = inbound("b-1", "beta", peer="bob")
        await client.post(INBOUND_PATH, json=second)
        await gateway.replies(second["chat_id"], 1)


async def test_each_peer_has_a_session_of_its_own_by_default(
    channel_gateway: ChannelFactory,
) -> None:
    with channel_gateway(NO_DAILY_RESET) as gateway:
        await _talk(gateway)
        assert [m["content"] for m in gateway.prompts()[-1]] == ["beta"]


async def test_dm_scope_main_shares_one_session_across_peers_and_channels(
    channel_gateway: ChannelFactory,
) -> None:
    with channel_gateway({**NO_DAILY_RESET, "TENANTRY_GATEWAY_DM_SCOPE": "main"}) as gateway:
        await _talk(gateway, channel="matrix")
        assert [m["content"] for m in gateway.prompts()[-1]] == ["alpha", "echo: alpha", "beta"]


async def test_reset_starts_a_new_session(channel_gateway: ChannelFactory) -> None:
    with channel_gateway(NO_DAILY_RESET) as gateway:
        async with gateway.client() as client:
            for n, text in enumerate(["remember me", "/reset", "fresh"]):
                await client.post(INBOUND_PATH, json=inbound(f"m-{n}", text))
        replies = await gateway.replies("chat-peer-1", 3)
        assert replies == ["echo: remember me", RESET_REPLY, "echo: fresh"]
        assert [m["content"] for m in gateway.prompts()[-1]] == ["fresh"]


async def test_in_a_group_only_a_mention_is_answered(channel_gateway: ChannelFactory) -> None:
    with channel_gateway(NO_DAILY_RESET) as gateway:
        group: dict[str, Any] = {"chat": "group-1", "chat_type": "group"}
        async with gateway.client() as client:
            await client.post(INBOUND_PATH, json=inbound("g-1", "chatter", **group))
            await client.post(INBOUND_PATH, json=inbound("g-2", "bot, hi", mentioned=True, **group))
        assert await gateway.replies("group-1", 1) == ["echo: bot, hi"]
        assert [m["content"] for m in gateway.prompts()[-1]] == ["bot, hi"]
        assert [r.in_reply_to for r in gateway.sink.replies] == ["g-2"]


async def test_a_failing_sink_gets_the_reply_again(channel_gateway: ChannelFactory) -> None:
    sink = RecordingSink(failures=2)
    with channel_gateway(NO_DAILY_RESET, sink=sink) as gateway:
        async with gateway.client() as client:
            await client.post(INBOUND_PATH, json=inbound("m-1", "hello"))
        assert await gateway.replies("chat-peer-1", 1) == ["echo: hello"]
        assert sink.attempts == 3


async def test_a_spent_budget_is_answered_politely(channel_gateway: ChannelFactory) -> None:
    with channel_gateway(NO_DAILY_RESET, budget=Budget(monthly_requests=1)) as gateway:
        async with gateway.client() as client:
            await client.post(INBOUND_PATH, json=inbound("m-1", "one"))
            await client.post(INBOUND_PATH, json=inbound("m-2", "two"))
        first, second = await gateway.replies("chat-peer-1", 2)
        assert first == "echo: one"
        assert second.startswith(BUDGET_REPLY.split("{", 1)[0])
        assert "monthly" in second
        assert len(gateway.prompts()) == 1


async def test_the_inbound_key_is_required(channel_gateway: ChannelFactory) -> None:
    with channel_gateway(NO_DAILY_RESET) as gateway:
        for key in (None, "not-the-key"):
            async with gateway.client(key) as client:
                response = await client.post(INBOUND_PATH, json=inbound("m-1", "hello"))
            assert response.status_code == 401
            problem_shape(response.json(), 401, "invalid_api_key")
        async with gateway.client() as client:
            response = await client.post(INBOUND_PATH, json={**inbound("m-1", "hello"), "extra": 1})
        assert response.status_code == 400
        problem_shape(response.json(), 400, "invalid_inbound_message")
        assert "extra" in response.json()["detail"]
    assert gateway.sink.replies == []


async def test_without_an_inbound_key_the_route_is_not_there(
    channel_gateway: ChannelFactory,
) -> None:
    with channel_gateway(NO_DAILY_RESET, inbound_key=None) as gateway:
        async with gateway.client() as client:
            response = await client.post(INBOUND_PATH, json=inbound("m-1", "hello"))
        assert response.status_code == 404
        problem_shape(response.json(), 404, "channels_disabled")


class RecordingOutlet:
    """An adapter's sending side that records replies and the turns it was working on;
    ``down`` makes every send fail until it is cleared."""

    def __init__(self, down: bool = False) -> None:
        self.sink = RecordingSink()
        self.down = threading.Event()
        if down:
            self.down.set()
        self.log: list[str] = []

    async def send(self, reply: OutboundReply) -> None:
        if self.down.is_set():
            self.sink.attempts += 1
            raise ConnectionError("the channel is down")
        await self.sink(reply)
        self.log.append(f"sent {reply.in_reply_to}")

    @asynccontextmanager
    async def working(self, message: InboundMessage) -> AsyncIterator[None]:
        self.log.append(f"typing {message.message_id}")
        yield
        self.log.append(f"done {message.message_id}")


async def test_a_channel_that_is_down_holds_up_only_its_own_replies(
    channel_gateway: ChannelFactory,
) -> None:
    signal = RecordingOutlet(down=True)
    with channel_gateway(NO_DAILY_RESET, outlets={"signal": signal}) as gateway:
        async with gateway.client() as client:
            await client.post(INBOUND_PATH, json=inbound("w-1", "one", channel="signal"))
            await client.post(INBOUND_PATH, json=inbound("w-2", "two", channel="signal"))
            await client.post(INBOUND_PATH, json=inbound("t-1", "tg", peer="tom"))
        # IRC has no outlet here: its reply goes to the fallback sink, past Signal's.
        assert await gateway.replies("chat-tom", 1) == ["echo: tg"]

        async def tried() -> bool | None:
            return signal.sink.attempts >= 2 or None

        await eventually(tried, what="Signal replies tried again")
        assert signal.sink.replies == []
        signal.down.clear()

        async def delivered() -> list[str] | None:
            texts = signal.sink.texts("chat-peer-1")
            return texts if len(texts) >= 2 else None

        assert await eventually(delivered, what="Signal replies") == ["echo: one", "echo: two"]
        assert gateway.sink.texts("chat-peer-1") == []


async def test_each_turn_runs_while_its_channel_shows_it_is_working(
    channel_gateway: ChannelFactory,
) -> None:
    outlet = RecordingOutlet()
    with channel_gateway(NO_DAILY_RESET, outlets={"irc": outlet}) as gateway:
        async with gateway.client() as client:
            await client.post(INBOUND_PATH, json=inbound("m-1", "hi"))

        async def sent() -> list[str] | None:
            return outlet.sink.texts("chat-peer-1") or None

        assert await eventually(sent, what="the reply") == ["echo: hi"]
        assert outlet.log == ["typing m-1", "done m-1", "sent m-1"]


async def test_relayed_webhook_calls_reach_their_channel_only_with_the_inbound_key(
    channel_gateway: ChannelFactory,
) -> None:
    seen: list[WebhookRequest] = []

    async def signal_webhook(request: WebhookRequest) -> WebhookAnswer:
        seen.append(request)
        return WebhookAnswer(status=200, body=request.query.get("hub.challenge", "").encode())

    path = WEBHOOK_PATH.replace("{channel}", "signal")
    with channel_gateway(NO_DAILY_RESET, webhooks={"signal": signal_webhook}) as gateway:
        async with gateway.client(key=None) as anonymous:
            refused = await anonymous.get(path, params={"hub.challenge": "42"})
        async with gateway.client(key="not-the-key") as wrong:
            wrong_key = await wrong.post(path, content=b"{}")
        async with gateway.client() as client:
            answered = await client.get(path, params={"hub.challenge": "42"})
            posted = await client.post(
                path, content=b'{"x":1}', headers={"X-Hub-Signature-256": "sha256=ab"}
            )
            other = await client.post(WEBHOOK_PATH.replace("{channel}", "matrix"), content=b"")
    assert (refused.status_code, wrong_key.status_code) == (401, 401)
    assert (answered.status_code, answered.content) == (200, b"42")
    assert posted.status_code == 200
    assert other.status_code == 404
    problem_shape(other.json(), 404, "channel_not_running")
    assert [r.method for r in seen] == ["GET", "POST"]
    assert seen[1].body == b'{"x":1}'
    assert seen[1].headers["x-hub-signature-256"] == "sha256=ab"
    assert "authorization" not in seen[1].headers
