"""Channel messages survive a gateway killed mid-turn: the kill -9 property, with real
processes.

The gateway POSTs its replies to ``TENANTRY_GATEWAY_REPLY_URL``, here a recording server;
the model double holds every completion until the test opens its gate, so the first gateway
is killed while its turns are in flight, and a second one on the same runtime and data dirs
answers everything that had been accepted.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tenant_gateway.channels.contract import INBOUND_PATH
from tenant_gateway.channels.inbox import INBOX_FILE
from tests.doubles.http_server import serve_in_thread
from tests.doubles.openai_upstream import OpenAIUpstream, Receive, Scope, Send
from tests.integration.gateway.conftest import new_key, write_bundle
from tests.integration.gateway.test_channels import INBOUND_KEY, enable_inbound
from tests.integration.gateway.test_process import GatewayProcess
from tests.waiting import eventually_sync


class GatedUpstream:
    """The OpenAI double, holding each chat completion until :attr:`gate` is set."""

    def __init__(self) -> None:
        self.inner = OpenAIUpstream()
        self.gate = threading.Event()
        self.held = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/chat/completions":
            self.held.set()
            while not self.gate.is_set():
                await asyncio.to_thread(self.gate.wait, 0.1)
        await self.inner(scope, receive, send)


class ReplyRecorder:
    """Where the gateway POSTs replies: records each body, answers 204."""

    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        with self._lock:
            self.replies.append(json.loads(body))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def answered(self) -> set[str]:
        with self._lock:
            return {r["in_reply_to"] for r in self.replies}


@pytest.fixture
def processes() -> Iterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    yield started
    for gateway in started:
        if gateway.process.poll() is None:
            gateway.process.kill()
            gateway.process.wait()


def _message(n: int) -> dict[str, Any]:
    peer = f"peer-{n % 3}"
    return {
        "channel": "signal",
        "message_id": f"m-{n}",
        "chat_id": f"chat-{peer}",
        "peer_id": peer,
        "chat_type": "dm",
        "text": f"message {n}",
        "received_at": datetime.now(UTC).isoformat(),
    }


def _outbox(data_dir: Path) -> list[tuple[str, int, int]]:
    """Per accepted message: its id, whether it is done, and how many replies it has."""
    with sqlite3.connect(f"file:{data_dir / INBOX_FILE}?mode=ro", uri=True) as db:
        return db.execute(
            "SELECT i.message_id, i.done_at IS NOT NULL, COUNT(o.seq) FROM inbound i "
            "LEFT JOIN outbound o ON o.inbound_seq = i.seq GROUP BY i.seq ORDER BY i.seq"
        ).fetchall()


def test_a_gateway_killed_mid_turn_answers_every_accepted_message_after_a_restart(
    tmp_path: Path, processes: list[GatewayProcess]
) -> None:
    runtime_dir, data_dir = tmp_path / "run", tmp_path / "data"
    runtime_dir.mkdir()
    upstream, recorder = GatedUpstream(), ReplyRecorder()
    with serve_in_thread(upstream) as model, serve_in_thread(recorder) as replies:
        write_bundle(runtime_dir, [new_key()], f"{model.url}/v1")
        enable_inbound(runtime_dir, INBOUND_KEY)
        env = {
            "TENANTRY_GATEWAY_REPLY_URL": f"{replies.url}/replies",
            "TENANTRY_GATEWAY_CHANNEL_MODEL": "stub-model",
            "TENANTRY_GATEWAY_SESSION_DAILY_RESET": "off",
        }
        first = GatewayProcess(runtime_dir, data_dir, **env)
        processes.append(first)
        state = first.wait_ready()
        headers = {"Authorization": f"Bearer {INBOUND_KEY}"}
        url = f"http://127.0.0.1:{state.port}{INBOUND_PATH}"
        for n in range(6):
            response = httpx.post(url, json=_message(n), headers=headers, timeout=10)
            assert response.status_code == 202, response.text

        assert upstream.held.wait(timeout=30), "no turn reached the model"
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=30)
        assert recorder.replies == []  # every turn was still waiting for the model

        upstream.gate.set()
        second = GatewayProcess(runtime_dir, data_dir, **env)
        processes.append(second)
        second.wait_ready()
        expected = {f"m-{n}" for n in range(6)}
        eventually_sync(
            lambda: recorder.answered() == expected or None, what="every message answered"
        )
        assert second.stop() == 0

    assert _outbox(data_dir) == [(f"m-{n}", 1, 1) for n in range(6)]
    for peer in range(3):
        texts = [r["text"] for r in recorder.replies if r["chat_id"] == f"chat-peer-{peer}"]
        ordered = list(dict.fromkeys(texts))  # delivered at least once: repeats may happen
        assert ordered == [f"echo: message {peer}", f"echo: message {peer + 3}"]
