"""The gateway's unseal request, against real HTTP servers on 127.0.0.1: what it sends, and
how each kind of failure leaves the credentials sealed with a reason that says why."""

from __future__ import annotations

import base64
import json
import os
import socket
from pathlib import Path
from typing import Any

from tenant_gateway.contract import IDENTITY_FILE, GatewayBundle
from tenant_gateway.credentials import CredentialKeeper
from tenant_gateway.redaction import SecretValues
from tests.doubles.http_server import serve_in_thread
from tests.integration.vault.test_log_redaction import IDENTITY, TENANT_ID, UnsealAnswer, sealed


class Canned:
    """A control plane answering every request with one fixed status and body."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.seen.append(scope)
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def bundle_for(url: str | None, dek: bytes) -> GatewayBundle:
    return GatewayBundle(
        tenant_id=TENANT_ID,
        tenant_slug="unseal",
        keys=[],
        key_digest_key=base64.b64encode(bytes(32)).decode(),
        credentials=[sealed(dek, "c1", "openai", {"api_key": "sk-unseal-request-test-0001"})],
        control_plane_url=url,
    )


def keeper_in(tmp_path: Path) -> CredentialKeeper:
    (tmp_path / IDENTITY_FILE).write_text(IDENTITY + "\n")
    return CredentialKeeper(tmp_path, timeout=2, secret_values=SecretValues())


async def test_the_request_carries_the_identity_and_opens_the_credentials(
    tmp_path: Path,
) -> None:
    dek = os.urandom(32)
    answer = UnsealAnswer(dek)
    seen: list[dict[str, Any]] = []

    async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await answer(scope, receive, send)

    keeper = keeper_in(tmp_path)
    with serve_in_thread(recording) as control_plane:
        await keeper.sync(bundle_for(control_plane.url + "/", dek))
    assert keeper.refusal is None
    assert keeper.get("openai") == {"api_key": "sk-unseal-request-test-0001"}
    [request] = [s for s in seen if s["type"] == "http"]
    assert request["method"] == "POST"
    assert request["path"] == f"/internal/v1/gateways/{TENANT_ID}/unseal"
    headers = dict(request["headers"])
    assert headers[b"authorization"] == f"Bearer {IDENTITY}".encode()
    assert headers[b"connection"] == b"close"


async def test_an_unreachable_control_plane_leaves_them_sealed(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    keeper = keeper_in(tmp_path)
    await keeper.sync(bundle_for(f"http://127.0.0.1:{port}", os.urandom(32)))
    assert keeper.refusal == "control plane unreachable (ConnectionRefusedError)"
    assert keeper.providers == []
    assert not keeper.suspended


async def test_a_refusal_names_the_status_and_detail(tmp_path: Path) -> None:
    problem = {"type": "https://tenantry.dev/problems/unseal-refused", "status": 403}
    refusing = Canned(403, json.dumps({**problem, "detail": "token not valid"}).encode())
    keeper = keeper_in(tmp_path)
    with serve_in_thread(refusing) as control_plane:
        await keeper.sync(bundle_for(control_plane.url, os.urandom(32)))
    assert keeper.refusal == "unseal refused (403): token not valid"
    assert not keeper.suspended, "only the tenant-suspended problem means suspended"


async def test_an_answer_that_is_not_an_unseal_response_leaves_them_sealed(
    tmp_path: Path,
) -> None:
    keeper = keeper_in(tmp_path)
    with serve_in_thread(Canned(200, b'{"data_keys": "nope"}')) as control_plane:
        await keeper.sync(bundle_for(control_plane.url, os.urandom(32)))
    assert keeper.refusal == "the control plane's unseal answer was not understood"
    assert keeper.providers == []


async def test_without_a_control_plane_nothing_is_asked(tmp_path: Path) -> None:
    keeper = keeper_in(tmp_path)
    await keeper.sync(bundle_for(None, os.urandom(32)))
    assert keeper.refusal == "no control plane to unseal with"
