"""Anthropic's native Messages API behind the OpenAI chat format, both ways, streaming too.

Requests: ``system``/``developer`` messages become ``system``; user content parts become
text and image blocks; an assistant's ``tool_calls`` become ``tool_use`` blocks and ``tool``
messages ``tool_result`` blocks (consecutive messages of one role are merged, as the API
wants turns to alternate); ``tools``, ``tool_choice``, ``stop``, ``max_tokens`` (required by
Anthropic: :data:`DEFAULT_MAX_TOKENS` when the client sets none), ``temperature`` and
``top_p`` are mapped. Answers: text and ``tool_use`` blocks become an assistant message with
``tool_calls``, ``stop_reason`` a ``finish_reason``, usage OpenAI's ``usage``. A stream of
Messages events becomes ``chat.completion.chunk`` events ending in ``data: [DONE]``
(:class:`AnthropicStream`); Anthropic's error bodies become OpenAI's.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec

from tenant_gateway.models.errors import (
    UpstreamBadAnswer,
    UpstreamFailed,
    UpstreamUnavailable,
    openai_error_body,
    parse_retry_after,
)
from tenant_gateway.models.providers import ChatCall, ModelCard, decode_listing
from tenant_gateway.models.transport import ModelClient, UpstreamReply, UpstreamStream, join
from tenant_gateway.settings import GatewayError

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}


class UntranslatableRequest(GatewayError):
    """The request cannot be said in the Messages API's terms."""

    status_code = 400
    problem = "invalid-request"
    title = "Invalid request"
    error_type = "invalid_request_error"
    code = "invalid_request"


# -- requests ---------------------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", None)
        )
    return ""


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise UntranslatableRequest("an image_url content part needs a url")
    if url.startswith("data:"):
        head, _, data = url[5:].partition(",")
        media_type = head.split(";", 1)[0]
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "image_url":
            blocks.append(_image_block(part))
        elif isinstance(part.get("text"), str):
            blocks.append({"type": "text", "text": part["text"]})
    return blocks


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    try:
        parsed = json.loads(arguments)
    except ValueError:
        raise UntranslatableRequest(
            f"the arguments of tool call {call.get('id')!r} are not valid JSON"
        ) from None
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": parsed}


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    chosen: dict[str, Any] | None = None
    if choice == "auto":
        chosen = {"type": "auto"}
    elif choice == "required":
        chosen = {"type": "any"}
    elif choice == "none":
        chosen = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        chosen = {"type": "tool", "name": choice["function"].get("name")}
    if parallel is False:
        chosen = {**(chosen or {"type": "auto"}), "disable_parallel_tool_use": True}
    return chosen


def messages_request(document: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat completion body."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in document.get("messages") or []:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.append(_text(content))
        elif role == "user":
            _append(messages, "user", _user_blocks(content))
        elif role == "assistant":
            blocks = [{"type": "text", "text": t} for t in [_text(content)] if t]
            blocks += [_tool_use(c) for c in message.get("tool_calls") or []]
            _append(messages, "assistant", blocks)
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
                "content": _text(content),
            }
            _append(messages, "user", [result])
        else:
            raise UntranslatableRequest(f"messages with role {role!r} have no Anthropic form")
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": document.get("max_completion_tokens")
        or document.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        body["system"] = "\n\n".join(system)
    for name in ("temperature", "top_p"):
        if document.get(name) is not None:
            body[name] = document[name]
    stop = document.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = [
        {
            "name": t["function"].get("name"),
            "description": t["function"].get("description", ""),
            "input_schema": t["function"].get("parameters") or {"type": "object"},
        }
        for t in document.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    if tools:
        body["tools"] = tools
    choice = _tool_choice(document.get("tool_choice"), document.get("parallel_tool_calls"))
    if choice is not None:
        body["tool_choice"] = choice
    if isinstance(document.get("user"), str):
        body["metadata"] = {"user_id": document["user"]}
    if stream:
        body["stream"] = True
    return body


# -- answers ----------------------------------------------------------------------------------


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def _input_tokens(usage: dict[str, Any]) -> int:
    return sum(
        int(usage.get(name) or 0)
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )


def chat_completion(message: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI ``chat.completion`` for a Messages API answer."""
    blocks = message.get("content") or []
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    tool_calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input", {}))},
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    reply: dict[str, Any] = {"role": "assistant", "content": text or (None if tool_calls else "")}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    usage = message.get("usage") or {}
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": FINISH_REASONS.get(message.get("stop_reason") or "", "stop"),
                "logprobs": None,
            }
        ],
        "usage": _usage(_input_tokens(usage), int(usage.get("output_tokens") or 0)),
    }


def openai_error(content: bytes, status: int) -> bytes:
    """Anthropic's ``{"type": "error", "error": {...}}`` as an OpenAI error body."""
    try:
        error = json.loads(content).get("error") or {}
        message = str(error.get("message") or f"Anthropic answered {status}")
        kind = str(error.get("type") or "api_error")
    except (ValueError, AttributeError):
        message, kind = (
            content.decode("utf-8", "replace")[:500] or f"Anthropic answered {status}",
            "api_error",
        )
    return openai_error_body(message, kind, kind)


class AnthropicStream:
    """Messages API server-sent events, passed on as OpenAI chunk events."""

    content_type = "text/event-stream; charset=utf-8"

    def __init__(self, upstream: UpstreamStream, *, include_usage: bool) -> None:
        self._upstream = upstream
        self._include_usage = include_usage
        self._buffer = b""
        self._id = ""
        self._model = ""
        self._created = int(time.time())
        self._tools: dict[int, int] = {}
        self._input_tokens = 0
        self._output_tokens = 0
        self.finished = False

    async def chunks(self) -> AsyncIterator[bytes]:
        async for data in self._upstream.chunks():
            self._buffer += data.replace(b"\r\n", b"\n")
            *events, self._buffer = self._buffer.split(b"\n\n")
            out = b"".join(self._translate(e) for e in events)
            if out:
                yield out
            if self.finished:
                return
        if not self.finished:
            raise UpstreamUnavailable("Anthropic ended its stream before message_stop")

    async def aclose(self) -> None:
        await self._upstream.aclose()

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return b"data: " + msgspec.json.encode(chunk) + b"\n\n"

    def _translate(self, event: bytes) -> bytes:
        data = b"\n".join(
            line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
        )
        if not data:
            return b""
        try:
            payload = json.loads(data)
        except ValueError:
            raise UpstreamBadAnswer("Anthropic sent a stream event that is not JSON") from None
        kind = payload.get("type")
        if kind == "message_start":
            message = payload.get("message") or {}
            self._id, self._model = message.get("id", ""), message.get("model", "")
            self._input_tokens = _input_tokens(message.get("usage") or {})
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self._tools.setdefault(int(payload.get("index", 0)), len(self._tools))
                call = {
                    "index": index,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return self._chunk({"tool_calls": [call]})
            if block.get("type") == "text" and block.get("text"):
                return self._chunk({"content": block["text"]})
            return b""
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta":
                return self._chunk({"content": delta.get("text", "")})
            if delta.get("type") == "input_json_delta":
                index = self._tools.get(int(payload.get("index", 0)), 0)
                call = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                return self._chunk({"tool_calls": [call]})
            return b""
        if kind == "message_delta":
            usage = payload.get("usage") or {}
            self._output_tokens = int(usage.get("output_tokens") or self._output_tokens)
            reason = (payload.get("delta") or {}).get("stop_reason")
            return self._chunk({}, FINISH_REASONS.get(reason or "", "stop"))
        if kind == "message_stop":
            self.finished = True
            tail = b""
            if self._include_usage:
                usage_chunk = {
                    "id": self._id,
                    "object": "chat.completion.chunk",
                    "created": self._created,
                    "model": self._model,
                    "choices": [],
                    "usage": _usage(self._input_tokens, self._output_tokens),
                }
                tail = b"data: " + msgspec.json.encode(usage_chunk) + b"\n\n"
            return tail + b"data: [DONE]\n\n"
        if kind == "error":
            self.finished = True
            error = payload.get("error") or {}
            raise UpstreamUnavailable(
                f"Anthropic broke off its answer: {error.get('type', 'error')}: "
                f"{error.get('message', '')}"
            )
        return b""  # ping, and event types added later


# -- the provider -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Anthropic:
    """Anthropic's API at ``base_url`` (its origin; ``/v1/messages`` is appended)."""

    base_url: str
    client: ModelClient
    api_key: str
    kind: str = "anthropic"

    def _headers(self, accept: str) -> dict[str, str]:
        return {
            "x-api-key": self.api_key,
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
            "accept": accept,
            "accept-encoding": "identity",
        }

    def _request(self, call: ChatCall, *, stream: bool) -> bytes:
        try:
            document = call.document()
        except msgspec.DecodeError as exc:
            raise UntranslatableRequest(f"the request body is not valid JSON: {exc}") from None
        return msgspec.json.encode(messages_request(document, call.upstream_model, stream=stream))

    def _failed(self, status: int, content: bytes, retry_after: str | None) -> UpstreamFailed:
        return UpstreamFailed(
            status,
            openai_error(content, status),
            "application/json",
            retry_after=parse_retry_after(retry_after),
        )

    async def complete(self, call: ChatCall) -> UpstreamReply:
        url = join(self.base_url, "v1/messages")
        body = self._request(call, stream=False)
        request = self.client.build(self.kind, "POST", url, self._headers("application/json"), body)
        response = await self.client.send(self.kind, "chat", request, stream=False)
        if response.status_code >= 400:
            raise self._failed(
                response.status_code, response.content, response.headers.get("retry-after")
            )
        try:
            message = json.loads(response.content)
        except ValueError:
            raise UpstreamBadAnswer("Anthropic answered with a body that is not JSON") from None
        return UpstreamReply(200, msgspec.json.encode(chat_completion(message)), "application/json")

    async def stream(self, call: ChatCall) -> AnthropicStream:
        url = join(self.base_url, "v1/messages")
        body = self._request(call, stream=True)
        request = self.client.build(
            self.kind, "POST", url, self._headers("text/event-stream"), body
        )
        response = await self.client.send(self.kind, "chat", request, stream=True)
        if response.status_code >= 400:
            content = await self.client.read_error(response)
            raise self._failed(response.status_code, content, response.headers.get("retry-after"))
        options = call.document().get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        return AnthropicStream(UpstreamStream(response, self.base_url), include_usage=include_usage)

    async def list_models(self) -> list[ModelCard]:
        url = join(self.base_url, "v1/models")
        request = self.client.build(self.kind, "GET", url, self._headers("application/json"))
        response = await self.client.send(self.kind, "models", request, stream=False)
        if response.status_code != 200:
            raise UpstreamBadAnswer(f"Anthropic answered {response.status_code} to GET /v1/models")
        return [
            ModelCard(id=m.id, owned_by="anthropic")
            for m in decode_listing(response.content, self.base_url)
        ]
