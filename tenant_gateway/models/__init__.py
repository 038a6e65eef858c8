"""How the gateway reaches models: providers behind one interface, and the router.

* :mod:`~tenant_gateway.models.transport`: one shared HTTP client per provider kind;
* :mod:`~tenant_gateway.models.providers`: the interface and the OpenAI-compatible provider
  (the platform's vLLM fleet, OpenAI, any OpenAI-compatible base URL);
* :mod:`~tenant_gateway.models.anthropic`: Anthropic's Messages API in OpenAI's shapes;
* :mod:`~tenant_gateway.models.router`: names to providers, retries, fallbacks, cooldowns;
* :mod:`~tenant_gateway.models.errors`: what can go wrong, as errors the app shows.

This package depends only on the gateway's settings and contract; the credentials it needs
come in through :class:`~tenant_gateway.models.router.CredentialSource`.
"""

from tenant_gateway.models.errors import (
    NoModelConfigured,
    ProvidersCoolingDown,
    UnknownModel,
    UpstreamBadAnswer,
    UpstreamError,
    UpstreamFailed,
    UpstreamUnavailable,
)
from tenant_gateway.models.providers import ModelCard, ModelList
from tenant_gateway.models.router import ModelRouter, Target
from tenant_gateway.models.transport import AnswerStream, ModelClient, UpstreamReply

__all__ = [
    "AnswerStream",
    "ModelCard",
    "ModelClient",
    "ModelList",
    "ModelRouter",
    "NoModelConfigured",
    "ProvidersCoolingDown",
    "Target",
    "UnknownModel",
    "UpstreamBadAnswer",
    "UpstreamError",
    "UpstreamFailed",
    "UpstreamReply",
    "UpstreamUnavailable",
]
