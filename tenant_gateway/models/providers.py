"""Model providers behind one interface, and the OpenAI-compatible one.

A provider answers a :class:`ChatCall` completely (:meth:`Provider.complete`) or as a stream
(:meth:`Provider.stream`), always in OpenAI's shapes, and lists its models. The platform
fleet (vLLM), OpenAI itself and any OpenAI-compatible base URL are all
:class:`OpenAICompatible`: the client's body goes out byte for byte (only ``model`` is
rewritten when the upstream knows the model by another name), so ``tools``,
``response_format`` and fields the gateway has never heard of reach the model untouched.
Anthropic (native Messages API) lives in :mod:`tenant_gateway.models.anthropic`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from tenant_gateway.models.errors import UpstreamBadAnswer, UpstreamFailed, parse_retry_after
from tenant_gateway.models.transport import (
    AnswerStream,
    ModelClient,
    UpstreamReply,
    UpstreamStream,
    join,
    origin,
)

PROVIDER_KINDS = ("platform", "openai", "anthropic", "openai_compatible")
BYOK_PROVIDERS = ("openai", "anthropic", "openai_compatible")
"""Providers a tenant brings its own key for; their models are named ``byok/<provider>/<id>``."""


@dataclass
class ChatCall:
    """One chat completion request on its way to a provider."""

    body: bytes
    """The client's body, as it sent it."""
    upstream_model: str
    """The model's name at the provider."""
    requested_model: str
    stream: bool
    _document: dict[str, Any] | None = field(default=None, repr=False)

    def document(self) -> dict[str, Any]:
        """The body as JSON (decoded once)."""
        if self._document is None:
            decoded = msgspec.json.decode(self.body)
            self._document = decoded if isinstance(decoded, dict) else {}
        return self._document

    def payload(self) -> bytes:
        """The body to send: the client's bytes, with ``model`` renamed if it must be."""
        if self.upstream_model == self.requested_model:
            return self.body
        return msgspec.json.encode({**self.document(), "model": self.upstream_model})


class ModelCard(msgspec.Struct, frozen=True):
    """One entry of an OpenAI model list."""

    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "platform"


class ModelList(msgspec.Struct, frozen=True):
    """Body of ``GET /v1/models``."""

    data: list[ModelCard]
    object: str = "list"


class _ListedModel(msgspec.Struct):
    id: str
    created: int = 0
    owned_by: str = ""


class _Listing(msgspec.Struct):
    data: list[_ListedModel]


class Provider(Protocol):
    @property
    def kind(self) -> str:
        """``platform``, ``openai``, ``anthropic`` or ``openai_compatible``."""
        ...

    @property
    def base_url(self) -> str: ...

    async def complete(self, call: ChatCall) -> UpstreamReply: ...

    async def stream(self, call: ChatCall) -> AnswerStream: ...

    async def list_models(self) -> list[ModelCard]: ...


def decode_listing(content: bytes, base_url: str) -> list[_ListedModel]:
    try:
        return msgspec.json.decode(content, type=_Listing).data
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamBadAnswer(
            f"the model endpoint {origin(base_url)} sent a model list the gateway cannot "
            f"read: {exc}"
        ) from None


@dataclass(frozen=True)
class OpenAICompatible:
    """The platform fleet, OpenAI, or any OpenAI-compatible server at ``base_url`` (``/v1``)."""

    kind: str
    base_url: str
    client: ModelClient
    api_key: str | None = None

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": accept}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    async def complete(self, call: ChatCall) -> UpstreamReply:
        headers = self._headers("application/json")
        headers["accept-encoding"] = "identity"
        url = join(self.base_url, "chat/completions")
        request = self.client.build(self.kind, "POST", url, headers, call.payload())
        response = await self.client.send(self.kind, "chat", request, stream=False)
        content_type = response.headers.get("content-type", "application/json")
        if response.status_code >= 400:
            raise UpstreamFailed(
                response.status_code,
                response.content,
                content_type,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        return UpstreamReply(response.status_code, response.content, content_type)

    async def stream(self, call: ChatCall) -> UpstreamStream:
        headers = self._headers("text/event-stream")
        headers["accept-encoding"] = "identity"
        url = join(self.base_url, "chat/completions")
        request = self.client.build(self.kind, "POST", url, headers, call.payload())
        response = await self.client.send(self.kind, "chat", request, stream=True)
        if response.status_code >= 400:
            content = await self.client.read_error(response)
            raise UpstreamFailed(
                response.status_code,
                content,
                response.headers.get("content-type"),
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        return UpstreamStream(response, self.base_url)

    async def list_models(self) -> list[ModelCard]:
        url = join(self.base_url, "models")
        request = self.client.build(self.kind, "GET", url, self._headers("application/json"))
        response = await self.client.send(self.kind, "models", request, stream=False)
        if response.status_code != 200:
            raise UpstreamBadAnswer(
                f"the model endpoint {origin(self.base_url)} answered {response.status_code} "
                "to GET /models"
            )
        return [
            ModelCard(id=m.id, created=m.created, owned_by=m.owned_by or self.kind)
            for m in decode_listing(response.content, self.base_url)
        ]
