"""Bundle parsing, key checks and picking up a changed bundle."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import msgspec
import pytest

from tenant_gateway.contract import GatewayBundle, GatewayKeyDigest, digest_gateway_key
from tenant_gateway.keys import (
    BundleError,
    BundleSource,
    KeyRing,
    Unauthorized,
    bearer_token,
    parse_bundle,
    read_bundle,
)

DIGEST_KEY = bytes(range(32))
DIGEST_KEY_B64 = base64.b64encode(DIGEST_KEY).decode()


def bundle(*keys: str, tenant_id: str = "t-1", url: str | None = None) -> GatewayBundle:
    return GatewayBundle(
        tenant_id=tenant_id,
        tenant_slug="acme",
        keys=[
            GatewayKeyDigest(id=f"k{n}", digest=digest_gateway_key(k, DIGEST_KEY))
            for n, k in enumerate(keys)
        ],
        key_digest_key=DIGEST_KEY_B64,
        platform_models_url=url,
    )


def write(path: Path, content: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(content)
    tmp.replace(path)


def test_a_bundle_round_trips() -> None:
    original = bundle("a", "b", url="http://m/v1")
    assert parse_bundle(msgspec.json.encode(original)) == original


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{broken", "not valid JSON"),
        (b"[]", "invalid bundle"),
        (b'{"tenant_id": "t", "tenant_slug": "s"}', "keys"),
        (b'{"tenant_id": "t", "tenant_slug": "s", "keys": []}', "key_digest_key"),
        (
            b'{"tenant_id": "t", "tenant_slug": "s", "keys": [], "key_digest_key": "AA==",'
            b' "secret": "x"}',
            "secret",
        ),
        (
            b'{"tenant_id": "t", "tenant_slug": "s", "keys": [{"id": "k"}],'
            b' "key_digest_key": "AA=="}',
            "digest",
        ),
        (
            b'{"tenant_id": "t", "tenant_slug": "s", "keys": [], "key_digest_key": "AA=="}',
            "32 bytes",
        ),
        (
            b'{"tenant_id": "t", "tenant_slug": "s", "keys": [], "key_digest_key": "no!"}',
            "not base64",
        ),
    ],
)
def test_bad_bundles_say_what_is_wrong(content: bytes, message: str) -> None:
    with pytest.raises(BundleError) as caught:
        parse_bundle(content)
    assert message in caught.value.detail


def test_a_missing_bundle_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(BundleError) as caught:
        read_bundle(tmp_path / "bundle.json")
    assert "bundle.json" in caught.value.detail


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc ", "abc"),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic abc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_tokens(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_the_key_ring_accepts_exactly_the_keys_of_the_bundle() -> None:
    ring = KeyRing.of(bundle("tgk_one", "tgk_two"))
    assert len(ring) == 2
    assert ring.allows("tgk_one")
    assert ring.allows("tgk_two")
    assert not ring.allows("tgk_three")
    assert not ring.allows(digest_gateway_key("tgk_one", DIGEST_KEY)), "a digest is not a key"


def test_the_digest_is_keyed_hmac_over_sha256() -> None:
    inner = hashlib.sha256(b"tgk_x").digest()
    expected = hmac.new(DIGEST_KEY, inner, hashlib.sha256).hexdigest()
    assert digest_gateway_key("tgk_x", DIGEST_KEY) == expected
    assert digest_gateway_key("tgk_x", bytes(32)) != expected, "another key, another digest"


def test_keys_of_a_bundle_do_not_pass_under_another_tenants_digest_key() -> None:
    other = GatewayBundle(
        tenant_id="t",
        tenant_slug="s",
        keys=bundle("tgk_x").keys,
        key_digest_key=base64.b64encode(bytes(32)).decode(),
    )
    assert not KeyRing.of(other).allows("tgk_x")


def test_digests_are_compared_case_insensitively() -> None:
    upper = GatewayBundle(
        tenant_id="t",
        tenant_slug="s",
        keys=[GatewayKeyDigest(id="k", digest=digest_gateway_key("tgk_x", DIGEST_KEY).upper())],
        key_digest_key=DIGEST_KEY_B64,
    )
    assert KeyRing.of(upper).allows("tgk_x")


def test_authenticate_raises_unauthorized(tmp_path: Path) -> None:
    source = BundleSource(tmp_path / "bundle.json", bundle("tgk_ok"))
    source.authenticate("Bearer tgk_ok")
    for header in (None, "Bearer tgk_no", "tgk_ok"):
        with pytest.raises(Unauthorized) as caught:
            source.authenticate(header)
        assert caught.value.status_code == 401
        assert "tgk_" not in caught.value.detail, "a key never ends up in a message"


def test_a_changed_bundle_swaps_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    write(path, msgspec.json.encode(bundle("tgk_old")))
    source = BundleSource(path, read_bundle(path))
    assert source.refresh() is False, "unchanged file"
    assert source.keys.allows("tgk_old")

    write(path, msgspec.json.encode(bundle("tgk_new", url="http://m/v1")))
    assert source.refresh() is True
    assert source.keys.allows("tgk_new")
    assert not source.keys.allows("tgk_old")
    assert source.bundle.platform_models_url == "http://m/v1"
    assert source.reloads == 1


def test_a_broken_bundle_keeps_the_previous_one(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    write(path, msgspec.json.encode(bundle("tgk_old")))
    source = BundleSource(path, read_bundle(path))
    write(path, b"{broken")
    assert source.refresh() is False
    assert source.keys.allows("tgk_old")
    path.unlink()
    assert source.refresh() is False
    assert source.keys.allows("tgk_old")
    write(path, msgspec.json.encode(bundle("tgk_fixed")))
    assert source.refresh() is True
    assert source.keys.allows("tgk_fixed")


def test_a_bundle_for_another_tenant_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    write(path, msgspec.json.encode(bundle("tgk_mine")))
    source = BundleSource(path, read_bundle(path))
    write(path, msgspec.json.encode(bundle("tgk_theirs", tenant_id="t-2")))
    assert source.refresh() is False
    assert source.tenant_id == "t-1"
    assert source.keys.allows("tgk_mine")
    assert not source.keys.allows("tgk_theirs")


async def test_the_watcher_picks_up_a_change(tmp_path: Path) -> None:
    import asyncio

    from tests.waiting import eventually

    path = tmp_path / "bundle.json"
    write(path, msgspec.json.encode(bundle("tgk_old")))
    source = BundleSource(path, read_bundle(path), interval=0.02)
    watcher = asyncio.create_task(source.watch())
    try:
        write(path, msgspec.json.encode(bundle("tgk_new")))

        async def swapped() -> bool:
            return source.keys.allows("tgk_new")

        await eventually(swapped, timeout=5, what="new key in force")
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher
