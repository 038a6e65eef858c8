"""The gateway's published contract: what a runtime hands a gateway and what it reads back.

The control plane (any runtime backend) and the gateway meet only through these shapes:

* ``bundle.json`` in the gateway's *runtime dir*, written by the control plane (atomically,
  by rename). It names the tenant and carries the digests of the tenant's gateway keys and
  the settings the gateway needs. The gateway re-reads it when it changes, so a new or revoked
  key takes effect without a restart.
* ``state.json`` in the same dir, written by the gateway once it listens: its pid and port.
  A runtime uses it to find and adopt a gateway that is already running.
* ``gateway.lock`` in the same dir, held with ``flock`` by the live gateway for its whole
  life. A runtime that cannot take it knows a gateway for that tenant is alive.
* ``GET /readyz`` answers :class:`Readiness`, naming the tenant, so a runtime can check a
  process it finds really is that tenant's gateway.
* ``POST USAGE_PATH`` on the control plane, with the identity token: the gateway reports
  what its chat completions cost as a :class:`UsageBatch` of :class:`UsageEvent`, at least
  once each; the control plane answers a :class:`UsageReceipt` once the batch is stored and
  counts each event id once, however often it arrives.

This module imports nothing from the rest of the gateway; the control plane may import it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Annotated

import msgspec

BUNDLE_FILE = "bundle.json"
STATE_FILE = "state.json"
LOCK_FILE = "gateway.lock"
LOG_FILE = "gateway.log"

IDENTITY_FILE = "identity-token"
UNSEAL_PATH = "/internal/v1/gateways/{tenant_id}/unseal"
USAGE_PATH = "/internal/v1/gateways/{tenant_id}/usage"
USAGE_BATCH_MAX = 1000
"""Most events one :class:`UsageBatch` may carry."""
TENANT_SUSPENDED_PROBLEM = "https://tenantry.dev/problems/tenant-suspended"
"""Problem ``type`` of the control plane's 403 to an unseal while the tenant is suspended: the
gateway then refuses model calls until an unseal succeeds again."""

BUNDLE_VERSION = 1
KEY_DIGEST_KEY_SIZE = 32


class GatewayKeyDigest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One gateway API key, as the gateway knows it: an id and the keyed digest of the value
    (:func:`digest_gateway_key` under the bundle's ``key_digest_key``)."""

    id: str
    digest: str


class SealedCredential(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One of the tenant's credentials as the gateway receives it: ciphertext only.

    ``ciphertext`` is base64 of the :mod:`tenant_gateway.sealed` format, sealed under the
    tenant's data key version ``dek_version``, bound to tenant id, ``id`` and ``version``.
    """

    id: str
    provider: str
    version: int
    dek_version: int
    ciphertext: str


class PlatformModel(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A model of the platform's fleet that this tenant may use (an entry of the catalog)."""

    name: str
    """What the tenant calls it (``model`` in its requests)."""
    base_url: str
    """The OpenAI-compatible base URL serving it, ending in ``/v1``."""
    served_model_name: str | None = None
    """Its name at that server (vLLM's ``--served-model-name``), if not ``name``."""
    context_length: int | None = None


class Budget(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the tenant's plan lets its gateway spend; None means no limit."""

    monthly_tokens: int | None = None
    monthly_requests: int | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


class GatewayBundle(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything a gateway is told about its tenant; never holds a plaintext secret."""

    tenant_id: str
    tenant_slug: str
    keys: list[GatewayKeyDigest]
    key_digest_key: str
    """Base64 of this tenant's 32-byte key for :func:`digest_gateway_key`; it can check this
    tenant's keys and nothing else."""
    platform_models_url: str | None = None
    credentials: list[SealedCredential] = msgspec.field(default_factory=list)
    control_plane_url: str | None = None
    """Where the gateway unseals its data key (``UNSEAL_PATH``), with the token in
    ``IDENTITY_FILE`` beside the bundle."""
    platform_models: list[PlatformModel] = msgspec.field(default_factory=list)
    """The catalog's models this tenant may use."""
    platform_catalog: bool = False
    """True: ``platform_models`` is the whole choice of platform models (even when empty);
    False (the catalog is empty): whatever the fleet at ``platform_models_url`` lists."""
    model_aliases: dict[str, str] = msgspec.field(default_factory=dict)
    """Names the tenant chose for models (``"default": "byok/openai/gpt-4o"``)."""
    model_fallbacks: dict[str, list[str]] = msgspec.field(default_factory=dict)
    """Per model name, the models tried in turn when it fails (``["platform-llama"]``)."""
    budget: Budget | None = None
    """The plan's budgets and rates (calendar months in UTC, minutes by the clock)."""
    provider_bases: dict[str, str] = msgspec.field(default_factory=dict)
    """Where BYOK providers are reached (``openai``: a base URL ending in ``/v1``;
    ``anthropic``: an origin); unset: the providers' own APIs."""
    inbound_key_digest: str | None = None
    """:func:`digest_gateway_key` of the tenant's inbound key (:func:`inbound_key`), which
    channel adapters present to post messages; None: the gateway takes no channel messages."""
    channel_webhooks: bool = False
    """True: the control plane has a public URL and registers the webhooks of the tenant's
    own channel accounts (its Telegram bot), so adapters take updates from its relay and do
    not poll; False: the tenant's Telegram bot long-polls."""
    version: int = BUNDLE_VERSION


class GatewayState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a running gateway reports about itself in ``state.json``."""

    tenant_id: str
    pid: int
    host: str
    port: int
    started_at: float


class Readiness(msgspec.Struct, frozen=True):
    """Body of the gateway's ``GET /readyz``."""

    status: str
    tenant_id: str
    credentials: list[str] = msgspec.field(default_factory=list)
    """Providers whose credentials the gateway holds unsealed (names only)."""


class UnsealResponse(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The control plane's answer to ``POST UNSEAL_PATH``: the tenant's data keys by version,
    base64. The gateway keeps them, and what they open, in memory only."""

    tenant_id: str
    data_keys: dict[str, str]


_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
Tokens = Annotated[int, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(ge=0)]


class UsageEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What one chat completion cost and how it ended, as the gateway reports it."""

    id: Annotated[str, msgspec.Meta(pattern=_UUID)]
    """A UUID (version 7: time-ordered) made by the gateway; the event's idempotency key."""
    tenant_id: str
    at: datetime
    """When the call ended (UTC)."""
    model: Annotated[str, msgspec.Meta(max_length=256)]
    """The model as the client asked for it."""
    provider: Annotated[str, msgspec.Meta(max_length=64)] | None
    """The provider kind that answered (``platform``, ``openai``, ...); None if none could
    be reached."""
    byok: bool
    """True when the tenant's own provider key paid for the call, False for the platform."""
    stream: bool
    outcome: Annotated[str, msgspec.Meta(max_length=32)]
    """``ok``, ``upstream_error``, ``unreachable``, ``broken`` or ``disconnected``."""
    prompt_tokens: Tokens | None
    completion_tokens: Tokens | None
    """As the provider reported them; None when it reported none."""
    latency: Seconds
    """Seconds from the request to its last byte."""
    time_to_first_token: Seconds | None = None


class UsageBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST USAGE_PATH``: events of the gateway's own tenant, oldest first."""

    events: Annotated[list[UsageEvent], msgspec.Meta(min_length=1, max_length=USAGE_BATCH_MAX)]


class UsageReceipt(msgspec.Struct, frozen=True):
    """The control plane's answer: the batch is stored; ``stored`` of its ``received``
    events were new (the others had been stored before)."""

    received: int
    stored: int


def digest_gateway_key(value: str, key: bytes) -> str:
    """Keyed digest of a gateway key: hex ``HMAC-SHA256(key, SHA-256(value))``.

    Gateway keys are 256-bit random values, so a fast digest is not guessable; the key keeps
    a copy of the database from being enough to check a key found elsewhere.
    """
    inner = hashlib.sha256(value.encode("utf-8")).digest()
    return hmac.new(key, inner, hashlib.sha256).hexdigest()


INBOUND_KEY_CONTEXT = "inbound:"


def inbound_key(secret: bytes, tenant_id: str) -> str:
    """The tenant's inbound key: hex ``HMAC-SHA256(secret, "inbound:" + tenant_id)``.

    The control plane derives it from a key of its own whenever an adapter needs it, so it
    is never stored; the gateway holds only its digest (``inbound_key_digest``).
    """
    message = (INBOUND_KEY_CONTEXT + tenant_id).encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def inbound_key_digest(secret: bytes, tenant_id: str, key_digest_key: bytes) -> str:
    """What the bundle's ``inbound_key_digest`` holds for the key :func:`inbound_key` makes."""
    return digest_gateway_key(inbound_key(secret, tenant_id), key_digest_key)
