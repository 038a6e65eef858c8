"""Reading vLLM's ``GET /health``: 200 once the engine is loaded and able to serve.

While vLLM loads a model it does not listen yet (connection refused) or does not answer;
a dead or draining engine answers 503. Each reading says which, for the progress report.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class HealthReading:
    healthy: bool
    detail: str
    """What was seen, as a phrase: ``healthy``, ``not listening yet``, ``answered 503``…"""


async def read_health(client: httpx.AsyncClient, url: str, timeout: float) -> HealthReading:
    """One ``GET`` of ``url``, never raising for what a loading or broken server does."""
    try:
        response = await client.get(url, timeout=timeout)
    except httpx.ConnectError:
        return HealthReading(False, "not listening yet")
    except httpx.TimeoutException:
        return HealthReading(False, f"no answer within {timeout:.3g}s")
    except httpx.HTTPError as exc:
        return HealthReading(False, f"{type(exc).__name__}: {exc}")
    if response.status_code == 200:
        return HealthReading(True, "healthy")
    return HealthReading(False, f"answered {response.status_code}")
