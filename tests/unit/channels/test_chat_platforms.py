"""WhatsApp and Discord pieces that need no running gateway: splitting long replies, reading
Meta's notifications, checking Discord's Ed25519 signatures with a key made here."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tenant_gateway.channels.discord import verify_signature
from tenant_gateway.channels.platforms import BadWebhookCall, SignatureRefused
from tenant_gateway.channels.text import split_text
from tenant_gateway.channels.whatsapp import signature_of, text_messages
from tests.doubles.graph_api import status_notification, text_notification


@pytest.mark.parametrize("limit", [2000, 4096])
def test_long_replies_are_split_within_the_limit_at_whitespace_and_lose_nothing(
    limit: int,
) -> None:
    text = ("word " * 900 + "\n") * 3
    pieces = split_text(text, limit)
    assert "".join(pieces) == text
    assert all(len(p) <= limit for p in pieces)
    assert all(p[-1] in " \n" for p in pieces[:-1]), "cut after whitespace"
    assert split_text("x" * (limit + 1), limit) == ["x" * limit, "x"], "no whitespace: hard cut"
    assert split_text("", limit) == [""]


def test_only_text_messages_to_the_tenants_number_are_taken() -> None:
    body = text_notification("1065", "hello", wamid="wamid.ONE", sender="4915")
    [message] = text_messages(body, "1065")
    assert (message.channel, message.message_id, message.chat_id, message.text) == (
        "whatsapp",
        "wamid.ONE",
        "4915",
        "hello",
    )
    assert text_messages(body, "9999") == [], "another number's message is not ours"
    assert text_messages(status_notification("1065"), "1065") == [], "statuses are no messages"
    with pytest.raises(BadWebhookCall):
        text_messages(b"[1, 2]", "1065")


def test_metas_signature_is_the_hmac_of_the_body_under_the_app_secret() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"secret", b"{}", hashlib.sha256).hexdigest()
    assert signature_of("secret", b"{}") == "sha256=" + expected
    assert signature_of("secret", b"{}") != signature_of("secret", b"{ }")
    assert signature_of("secret", b"{}") != signature_of("other", b"{}")


def test_discord_signatures_made_with_a_test_key_are_accepted_and_tampering_refused() -> None:
    private = Ed25519PrivateKey.generate()
    public = _hex(private)
    body, timestamp = b'{"type":1}', "1796476762"
    signature = private.sign(timestamp.encode() + body).hex()
    verify_signature(public, signature, timestamp, body)
    for args in (
        (public, signature, timestamp, b'{"type":2}'),
        (public, signature, "1796476763", body),
        (_hex(Ed25519PrivateKey.generate()), signature, timestamp, body),
        (public, "zz", timestamp, body),
    ):
        with pytest.raises(SignatureRefused):
            verify_signature(*args)


def _hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
