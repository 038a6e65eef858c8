"""Fixtures of the runtime suites."""

from __future__ import annotations

from tests.integration.runtime.kubernetes_cluster import (  # noqa: F401 (fixtures)
    cluster,
    threaded_cluster,
)
