"""The platform Telegram bot's path, end to end: Telegram's webhook call to the control
plane, the forward to the tenant's gateway, the assistant's turn against a fast model stub,
and the reply back through the control plane to the Telegram Bot API double.

A real ``tenantry up`` (embedded default) runs the bot in webhook mode; its tenants' chats
are paired with ``/start CODE`` first. Measured:

* sequential messages (one in flight): webhook acknowledgement and end-to-end latency (the
  update posted → the reply's ``sendMessage`` arrives at the double);
* a burst of messages from many chats over several tenants, ``concurrency`` in flight:
  messages per second and the end-to-end p50/p95 under that load;
* baseline in the same run: one chat completion through a tenant's gateway (the model turn
  the path is built around), sequentially.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.processes import CHAT_BODY, ControlPlane, readyz, upstream, wait
from bench.stats import summary
from tests.doubles.telegram_api import (
    BotAccount,
    TelegramBotAPI,
    TelegramUser,
    private_message,
    start_command,
)

TENANTS = 4
CHATS_PER_TENANT = 4
SEQUENTIAL = 200
BURST = 1000
CONCURRENCY = 32
WEBHOOK = "/webhooks/telegram-platform"


class TimedTelegram(TelegramBotAPI):
    """The Bot API double, noting when each ``sendMessage`` arrives for whoever awaits it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiters: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[float]]] = {}

    async def _send_message(self, bot: BotAccount, params: dict[str, Any]) -> Any:
        result = await super()._send_message(bot, params)
        waiter = self.waiters.pop(str(params.get("text")), None)
        if waiter is not None:
            loop, future = waiter
            loop.call_soon_threadsafe(_settle, future, time.perf_counter())
        return result

    def expect(self, text: str) -> asyncio.Future[float]:
        """A future that is the arrival time of the message ``text``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        self.waiters[text] = (loop, future)
        return future


def _settle(future: asyncio.Future[float], at: float) -> None:
    if not future.done():
        future.set_result(at)


@dataclass
class Chat:
    user: TelegramUser
    tenant: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Driver:
    def __init__(self, cp_url: str, api: TimedTelegram, bot: BotAccount) -> None:
        self.api = api
        self.bot = bot
        self.client = httpx.AsyncClient(
            base_url=cp_url,
            timeout=60,
            limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY),
        )
        self.update_ids = iter(range(1, 10**9))

    async def post(self, update: dict[str, Any]) -> float:
        """POST the update as Telegram does; the seconds until the control plane answered."""
        body = {"update_id": next(self.update_ids), **update}
        headers = {"X-Telegram-Bot-Api-Secret-Token": self.bot.webhook_secret or ""}
        started = time.perf_counter()
        answer = await self.client.post(WEBHOOK, json=body, headers=headers)
        if answer.status_code != 200:
            raise RuntimeError(f"webhook answered {answer.status_code}: {answer.text[:200]}")
        return time.perf_counter() - started

    async def message(self, chat: Chat, text: str) -> tuple[float, float]:
        """(acknowledgement, end to end) of one message and its reply."""
        arrival = self.api.expect(f"echo: {text}")
        started = time.perf_counter()
        ack = await self.post(private_message(text, sender=chat.user))
        arrived = await asyncio.wait_for(arrival, timeout=60)
        return ack, arrived - started

    async def pair(self, cp: ControlPlane, chats: list[Chat]) -> None:
        async with httpx.AsyncClient(base_url=cp.url, headers=cp.headers, timeout=30) as admin:
            for chat in chats:
                issued = await admin.post(
                    f"/api/v1/tenants/{chat.tenant}/channels/telegram/pairing"
                )
                code = issued.json()["code"]
                connected = self.api.expect(
                    "Connected: this chat now talks to your assistant. Send a message to begin."
                )
                await self.post(start_command(code, sender=chat.user))
                await asyncio.wait_for(connected, timeout=30)

    async def burst(self, chats: list[Chat], count: int) -> tuple[float, list[float]]:
        """``count`` messages, ``CONCURRENCY`` in flight; (wall seconds, end-to-end each)."""
        latencies: list[float] = []
        queue = iter(range(count))

        async def worker(lane: int) -> None:
            for n in queue:
                chat = chats[(lane + n) % len(chats)]
                _ack, e2e = await self.message(chat, f"burst {n}")
                latencies.append(e2e)

        started = time.perf_counter()
        await asyncio.gather(*(worker(lane) for lane in range(CONCURRENCY)))
        return time.perf_counter() - started, latencies


async def _measure(cp: ControlPlane, api: TimedTelegram, bot: BotAccount) -> dict[str, Any]:
    tenants = await _tenants(cp)
    chats = [
        Chat(TelegramUser(id=7_000_000 + n, first_name=f"User {n}"), tenants[n % TENANTS]["slug"])
        for n in range(TENANTS * CHATS_PER_TENANT)
    ]
    driver = Driver(cp.url, api, bot)
    try:
        await driver.pair(cp, chats)
        for n in range(20):  # warm-up
            await driver.message(chats[n % len(chats)], f"warm {n}")
        acks, e2e = [], []
        for n in range(SEQUENTIAL):
            ack, total = await driver.message(chats[n % len(chats)], f"one {n}")
            acks.append(ack)
            e2e.append(total)
        wall, loaded = await driver.burst(chats, BURST)
    finally:
        await driver.client.aclose()
    turn = await _turns(tenants[0])
    return {"ack": acks, "e2e": e2e, "wall": wall, "loaded": loaded, "turn": turn}


async def _tenants(cp: ControlPlane) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=cp.url, headers=cp.headers, timeout=30) as admin:
        made = []
        for n in range(TENANTS):
            body = {"slug": f"bot-{n}", "plan": "enterprise"}
            created = (await admin.post("/api/v1/tenants", json=body)).json()
            made.append({"slug": body["slug"], "key": created["gateway_key"]["key"]})
        for tenant in made:
            while True:
                found = (await admin.get(f"/api/v1/tenants/{tenant['slug']}")).json()
                if found["state"] == "running" and readyz(found["endpoint"]):
                    tenant["endpoint"] = found["endpoint"]
                    break
                if found["state"] == "failed":
                    raise RuntimeError(found["reason"])
                await asyncio.sleep(0.05)
        return made


async def _turns(tenant: dict[str, Any]) -> list[float]:
    samples = []
    headers = {"Authorization": f"Bearer {tenant['key']}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        for _ in range(SEQUENTIAL):
            started = time.perf_counter()
            answer = await client.post(f"{tenant['endpoint']}/v1/chat/completions", json=CHAT_BODY)
            samples.append(time.perf_counter() - started)
            if answer.status_code != 200:
                raise RuntimeError(f"chat failed: {answer.status_code} {answer.text[:200]}")
    return samples


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def run() -> list[str]:
    from tests.doubles.http_server import serve_in_thread

    api = TimedTelegram()
    bot = api.add_bot("bench_platform_bot")
    port = _free_port()
    with (
        tempfile.TemporaryDirectory(prefix="tenantry-bench-bot-") as tmp,
        upstream() as upstream_url,
        serve_in_thread(api, lifespan="off") as telegram,
    ):
        api.url = telegram.url
        cp = ControlPlane(
            Path(tmp),
            upstream_url,
            port=port,
            TENANTRY_TELEGRAM_API_BASE=telegram.url,
            TENANTRY_TELEGRAM_PLATFORM_BOT_TOKEN=bot.token,
            TENANTRY_PUBLIC_URL=f"http://127.0.0.1:{port}",
        )
        try:
            wait(lambda: bot.webhook_url, 60, "the platform bot's webhook", interval=0.05)
            result = asyncio.run(_measure(cp, api, bot))
        finally:
            cp.stop()
            api.close()
    ack, e2e, turn = summary(result["ack"]), summary(result["e2e"]), summary(result["turn"])
    loaded = summary(result["loaded"])
    rate = BURST / result["wall"]
    return [
        f"{TENANTS} tenants, {TENANTS * CHATS_PER_TENANT} paired chats, webhook mode, "
        "model stub answering at once.",
        "",
        "| figure | p50 | p95 | baseline in the same run | ratio (p50) |",
        "|---|---|---|---|---|",
        f"| webhook acknowledged (update stored in the gateway's inbox), {SEQUENTIAL} "
        f"sequential | {ms(ack['p50'])} | {ms(ack['p95'])} | | |",
        f"| update posted → reply at the Bot API, {SEQUENTIAL} sequential "
        f"| {ms(e2e['p50'])} | {ms(e2e['p95'])} "
        f"| one chat completion through the gateway: {ms(turn['p50'])} "
        f"| {e2e['p50'] / turn['p50']:.1f}x |",
        f"| update posted → reply, {BURST} messages with {CONCURRENCY} in flight "
        f"| {ms(loaded['p50'])} | {ms(loaded['p95'])} | | |",
        "",
        f"Throughput: **{rate:.0f} messages/s** end to end ({BURST} messages in "
        f"{result['wall']:.1f} s, {CONCURRENCY} in flight).",
    ]
