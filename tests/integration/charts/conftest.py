"""The two charts, loaded once per session by the real Helm engine."""

from __future__ import annotations

from collections.abc import Iterator

import helm_python as helm
import pytest

from tests.integration.charts.rendering import CHARTS


@pytest.fixture(scope="session")
def tenantry_chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHARTS / "tenantry") as chart:
        yield chart


@pytest.fixture(scope="session")
def fleet_chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHARTS / "vllm-fleet") as chart:
        yield chart
