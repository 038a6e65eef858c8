"""What can go wrong between the gateway and a model provider, as errors the app can show.

::

    GatewayError
    ├── UpstreamUnavailable     502  the provider could not be reached, or broke off its answer
    ├── UpstreamBadAnswer       502  it answered something the gateway cannot use
    ├── UpstreamFailed          4xx/5xx  it answered an error: passed on in OpenAI's error shape
    ├── UnknownModel            404  no provider serves the model asked for
    ├── NoModelConfigured       503  the tenant has no model at all
    └── ProvidersCoolingDown    503  every provider that could answer is resting after failures

:attr:`retryable` says whether the same call may be tried again (a connection never made, a
rate limit, an overloaded or failing server); :attr:`retry_after` carries the provider's
``Retry-After`` in seconds, when it sent one.
"""

from __future__ import annotations

import email.utils
import time
from typing import ClassVar

import msgspec

from tenant_gateway.settings import GatewayError

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
"""Answers worth trying again (529 is Anthropic's "overloaded")."""


class UpstreamError(GatewayError):
    """Root of the errors a provider's answer (or silence) causes."""

    retryable: bool = False
    retry_after: float | None = None
    provider_fault: bool = True
    """False when the failure is the gateway's own (no free pooled connection in time):
    it must not make the provider rest."""
    fallback: ClassVar[bool] = True

    @property
    def falls_back(self) -> bool:
        """Whether another model of a fallback chain may be tried after this error."""
        return self.fallback


class UpstreamUnavailable(UpstreamError):
    """The model endpoint could not be reached, or broke off its answer."""

    status_code = 502
    problem = "upstream-unreachable"
    title = "Model endpoint unreachable"
    error_type = "upstream_error"
    code = "upstream_unreachable"

    def __init__(
        self, detail: str, *, retryable: bool = False, provider_fault: bool = True
    ) -> None:
        super().__init__(detail)
        self.retryable = retryable
        self.provider_fault = provider_fault


class UpstreamBadAnswer(UpstreamError):
    """The model endpoint answered something the gateway cannot use."""

    status_code = 502
    problem = "upstream-bad-answer"
    title = "Bad answer from the model endpoint"
    error_type = "upstream_error"
    code = "upstream_bad_answer"


class UpstreamFailed(UpstreamError):
    """The model endpoint answered an error status; its status and body go to the client.

    ``content`` is an OpenAI error body (a provider with another error shape translates it
    first), so a client reads the upstream cause the way it would from OpenAI.
    """

    problem = "upstream-error"
    title = "Model endpoint error"
    error_type = "upstream_error"
    code = "upstream_error"

    def __init__(
        self,
        status: int,
        content: bytes,
        content_type: str | None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"the model endpoint answered {status}")
        self.status = status
        self.content = content
        self.content_type = content_type or "application/json"
        self.retry_after = retry_after
        self.retryable = status in RETRYABLE_STATUSES

    @property
    def falls_back(self) -> bool:
        """A refused key, a spent quota or an unknown model may work elsewhere; a request
        the provider found malformed would fail everywhere."""
        return self.retryable or self.status in (401, 402, 403, 404)


class UnknownModel(UpstreamError):
    """No provider of this tenant serves the model asked for."""

    status_code = 404
    problem = "model-not-found"
    title = "Model not found"
    error_type = "invalid_request_error"
    code = "model_not_found"


class NoModelConfigured(UpstreamError):
    """Neither the bundle nor the environment names a model endpoint."""

    status_code = 503
    problem = "no-model-configured"
    title = "No model configured"
    error_type = "service_unavailable"
    code = "no_model_configured"
    fallback = False

    def __init__(self) -> None:
        super().__init__("no model configured for this tenant")


class ProvidersCoolingDown(UpstreamError):
    """Every provider able to answer failed repeatedly and is resting for a while."""

    status_code = 503
    problem = "providers-cooling-down"
    title = "Model providers cooling down"
    error_type = "service_unavailable"
    code = "providers_cooling_down"
    fallback = False

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def openai_error_body(message: str, error_type: str, code: str | None) -> bytes:
    """An OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
    error = {"message": message, "type": error_type, "param": None, "code": code}
    return msgspec.json.encode({"error": error})


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
