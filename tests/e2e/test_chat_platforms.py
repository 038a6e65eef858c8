"""WhatsApp and Discord, end to end: the platform (a test) calls the control plane's public
relay ``/webhooks/{whatsapp|discord}/{tenant}`` with real signatures made with test keys;
the tenant's real gateway process checks them with the credential it unsealed, answers, and
its reply arrives at the platform's API double. Tampered bodies, wrong or missing signatures,
stale timestamps and replays are refused; a message delivered twice is answered once; no
credential shows in any log."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tenant_gateway.contract import LOG_FILE
from tests.doubles.discord_api import InteractionSigner, ask, discord_api, ping
from tests.doubles.graph_api import graph_api, signature, status_notification, text_notification
from tests.doubles.openai_upstream import openai_upstream
from tests.e2e.conftest import ControlPlaneProcess
from tests.e2e.test_embedded_default import wait_running
from tests.waiting import eventually_sync

pytestmark = pytest.mark.slow

APP_SECRET = "whatsapp-app-secret-4f1c2b9e7d"
VERIFY_TOKEN = "whatsapp-verify-token-8a3e51c0"


@contextmanager
def control_plane(
    tmp_path: Path, args: tuple[str, ...] = (), **settings: str
) -> Iterator[ControlPlaneProcess]:
    """``tenantry up [args]`` (a real process, so gateways unseal their credentials from it)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TENANTRY_")}
    env.update(TENANTRY_RESYNC_INTERVAL="0.5", TENANTRY_LOG_LEVEL="debug", **settings)
    cp = ControlPlaneProcess(tmp_path / "data", env, args)
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


def assert_no_secret_logged(cp: ControlPlaneProcess, tenant_id: str, *secrets: str) -> None:
    gateway = cp.data_dir / "gateways" / tenant_id / LOG_FILE
    logs = cp.log.read_text(errors="replace") + gateway.read_text(errors="replace")
    assert tenant_id in logs, "the logs are there to be scanned"
    leaked = [s[:6] + "…" for s in secrets if s in logs]
    assert not leaked, f"secrets in the logs: {leaked}"


def wait_deleted(client: httpx.Client, tenant_id: str) -> None:
    def deleted() -> bool:
        return bool(client.get(f"/api/v1/tenants/{tenant_id}").json()["state"] == "deleted")

    eventually_sync(deleted, timeout=60, what="the tenant deleted")


def problem(answer: Any, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
    body = answer.json()
    assert body["status"] == status, body
    assert body["detail"], body
    return str(body["detail"])


def tenant_with(client: httpx.Client, slug: str, provider: str, fields: dict[str, str]) -> str:
    made = client.post("/api/v1/tenants", json={"slug": slug}).json()
    wait_running(client, slug)
    stored = client.put(f"/api/v1/tenants/{slug}/credentials/{provider}?validate=true", json=fields)
    assert stored.status_code in (200, 201), stored.text
    return str(made["id"])


def test_whatsapp_through_the_relay(tmp_path: Path) -> None:
    with openai_upstream(["stub-model"]) as fleet, graph_api() as graph:
        number, token = graph.add_number()
        fields = {
            "access_token": token,
            "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN,
            "phone_number_id": number,
        }
        env = {"TENANTRY_PLATFORM_MODELS_URL": fleet.url, "TENANTRY_WHATSAPP_API_BASE": graph.base}
        with control_plane(tmp_path, **env) as cp, cp.client() as client:
            tenant_id = tenant_with(client, "wa", "whatsapp", fields)
            hook = "/webhooks/whatsapp/wa"
            handshake = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}

            def verified() -> Any:
                answer = client.get(hook, params={**handshake, "hub.verify_token": VERIFY_TOKEN})
                return answer if answer.status_code == 200 else None

            # The credential reaches the running gateway without a restart.
            answer = eventually_sync(verified, timeout=30, what="the WhatsApp handshake")
            assert answer.text == "1158201444"
            wrong = client.get(hook, params={**handshake, "hub.verify_token": "guess"})
            assert "verify token" in problem(wrong, 403)

            body = text_notification(
                number,
                "hello",
                wamid="wamid.HBgLMTYzMTU1NTExODEVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
            )
            tampered = body.replace(b"hello", b"hellp")
            for headers in (
                {},
                {"X-Hub-Signature-256": signature(APP_SECRET, tampered)},
                {"X-Hub-Signature-256": signature("another-app-secret", body)},
            ):
                refused = client.post(hook, content=body, headers=headers)
                assert "X-Hub-Signature-256" in problem(refused, 401)
            genuine = {"X-Hub-Signature-256": signature(APP_SECRET, body)}
            for _ in range(2):  # Meta delivers again when unsure: answered once
                assert (client.post(hook, content=body, headers=genuine)).status_code == 200
            statuses = status_notification(number)
            ignored = client.post(
                hook,
                content=statuses,
                headers={"X-Hub-Signature-256": signature(APP_SECRET, statuses)},
            )
            assert ignored.status_code == 200

            def replied(count: int) -> list[str] | None:
                texts = graph.texts("16315551181")
                return texts if len(texts) >= count else None

            assert eventually_sync(lambda: replied(1), what="the reply") == ["echo: hello"]
            later = text_notification(number, "later")
            client.post(
                hook, content=later, headers={"X-Hub-Signature-256": signature(APP_SECRET, later)}
            )
            assert eventually_sync(lambda: replied(2), what="the next reply") == [
                "echo: hello",
                "echo: later",
            ], "the replayed message was answered once"
            assert_no_secret_logged(cp, tenant_id, token, APP_SECRET, VERIFY_TOKEN)
            client.delete("/api/v1/tenants/wa")
            wait_deleted(client, tenant_id)


def test_discord_through_the_relay(tmp_path: Path) -> None:
    signer = InteractionSigner()
    with openai_upstream(["stub-model"]) as fleet, discord_api() as discord:
        app = discord.add_application()
        fields = {
            "bot_token": app.bot_token,
            "application_id": app.id,
            "public_key": signer.public_key,
        }
        env = {"TENANTRY_PLATFORM_MODELS_URL": fleet.url, "TENANTRY_DISCORD_API_BASE": discord.base}
        with control_plane(tmp_path, **env) as cp, cp.client() as client:
            tenant_id = tenant_with(client, "dc", "discord", fields)
            hook = "/webhooks/discord/dc"

            def registered() -> list[str] | None:
                return [c["name"] for c in app.commands] or None

            # The credential reaches the running gateway, which registers /ask.
            assert eventually_sync(registered, timeout=30, what="/ask registered") == ["ask"]
            body = ping()
            pong = client.post(hook, content=body, headers=signer.headers(body))
            assert (pong.status_code, pong.json()) == (200, {"type": 1})

            token = discord.interaction_token(app)
            body = ask(app, token, "hello")
            tampered = body.replace(b"hello", b"hellp")
            stale = signer.headers(body, timestamp=time.time() - 600)
            other = InteractionSigner().headers(body)
            for content, headers in (
                (body, {}),
                (tampered, signer.headers(body)),
                (body, other),
                (body, stale),
            ):
                refused = client.post(hook, content=content, headers=headers)
                assert "X-Signature" in problem(refused, 401)
            signed = signer.headers(body)
            deferred = client.post(hook, content=body, headers=signed)
            assert (deferred.status_code, deferred.json()) == (200, {"type": 5})
            replayed = client.post(hook, content=body, headers=signed)
            assert "replay" in problem(replayed, 401)
            # Signed afresh, the same interaction is stored once: answered once.
            again = client.post(hook, content=body, headers=signer.headers(body, time.time() + 1))
            assert again.status_code == 200

            def followed_up(count: int) -> list[str] | None:
                contents = discord.contents()
                return contents if len(contents) >= count else None

            assert eventually_sync(lambda: followed_up(1), what="the follow-up") == ["echo: hello"]
            assert discord.posted[0].via == "followup"
            assert discord.posted[0].where == token
            later = ask(app, discord.interaction_token(app), "x" * 2500)
            client.post(hook, content=later, headers=signer.headers(later))
            contents = eventually_sync(lambda: followed_up(3), what="a long reply in two pieces")
            assert contents[1:] == ["echo: " + "x" * 1994, "x" * 506]
            assert_no_secret_logged(cp, tenant_id, app.bot_token, token)
            client.delete("/api/v1/tenants/dc")
            wait_deleted(client, tenant_id)
