"""Operations endpoints: liveness, readiness, metrics."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.plugins.prometheus import PrometheusController

from control_plane.api.problems import problem
from control_plane.errors import StorageError


@get("/healthz", tags=["operations"], include_in_schema=True)
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz", tags=["operations"])
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    """Ready when the database answers and the reconciler has accounted for every tenant."""
    state = request.app.state
    try:
        await state.db.ping()
    except StorageError as exc:
        return problem(503, "Not ready", exc.detail)
    if not state.reconciler.started.is_set():
        return problem(503, "Not ready", "the reconciler is still starting")
    return Response({"status": "ready", "runtime": state.settings.runtime})


class MetricsController(PrometheusController):
    path = "/metrics"
