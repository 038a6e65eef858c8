"""The client of an OpenAI-compatible embeddings endpoint (``POST {base}/embeddings``).

For now the platform's (no credential is sent); BYOK embeddings will come with the model
router's credentials. Timeouts are explicit; every failure, of the connection or of the
answer's shape, becomes :class:`EmbeddingsFailed`, so the store can fall back to
full-text search.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import msgspec

from tenant_gateway.memory.errors import EmbeddingsFailed
from tenant_gateway.settings import MemorySettings


class _Embedding(msgspec.Struct):
    index: int
    embedding: list[float]


class _EmbeddingList(msgspec.Struct):
    data: list[_Embedding]


class EmbeddingsClient:
    """Embeds texts with one model at one endpoint."""

    def __init__(
        self, base_url: str, model: str, connect_timeout: float = 5.0, timeout: float = 30.0
    ) -> None:
        self.model = model
        self._url = base_url.rstrip("/") + "/embeddings"
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=connect_timeout))

    @classmethod
    def from_settings(cls, settings: MemorySettings) -> EmbeddingsClient | None:
        """The client the settings configure, or None when vectors are off."""
        if settings.embeddings_url is None or settings.embeddings_model is None:
            return None
        return cls(
            settings.embeddings_url,
            settings.embeddings_model,
            settings.embeddings_connect_timeout,
            settings.embeddings_timeout,
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        try:
            response = await self._client.post(
                self._url, json={"model": self.model, "input": list(texts)}
            )
        except httpx.HTTPError as exc:
            raise EmbeddingsFailed(f"{self._url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise EmbeddingsFailed(f"{self._url} answered {response.status_code}")
        try:
            answer = msgspec.json.decode(response.content, type=_EmbeddingList)
        except msgspec.DecodeError as exc:
            raise EmbeddingsFailed(f"{self._url} answered an unreadable body: {exc}") from None
        vectors = [e.embedding for e in sorted(answer.data, key=lambda e: e.index)]
        if len(vectors) != len(texts) or any(not v for v in vectors):
            raise EmbeddingsFailed(f"{self._url} answered {len(vectors)} vectors for {len(texts)}")
        return vectors

    async def close(self) -> None:
        await self._client.aclose()
