"""Each chart's README documents every value its values.yaml has."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest

from tests.integration.charts.rendering import CHARTS


def _leaf_paths(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _leaf_paths(value, f"{path}.")
        else:
            yield path


@pytest.mark.parametrize("name", ["tenantry", "vllm-fleet"])
def test_readme_documents_every_value(name: str) -> None:
    readme = (CHARTS / name / "README.md").read_text()
    with helm.Chart.load(CHARTS / name) as chart:
        paths = list(_leaf_paths(chart.values))
    assert paths
    undocumented = []
    for path in paths:
        parts = path.split(".")
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        if not any(f"| `{prefix}` |" in readme for prefix in prefixes):
            undocumented.append(path)
    assert undocumented == [], f"charts/{name}/README.md does not document {undocumented}"
