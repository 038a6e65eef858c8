"""``task kind:up`` installs both charts, with values Helm accepts and that fit a kind cluster.

kind:up needs Docker, so it never runs here; its ``helm upgrade --install`` commands are read
from ``Taskfile.yml`` instead, their ``--set`` flags turned into values the way Helm reads them,
and each chart is rendered with them by the real Helm engine and linted."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.integration.charts.rendering import (
    REPO,
    Rendered,
    lint_findings,
    render,
    validate,
)

_INDEX = re.compile(r"^(?P<key>[^\[\]]+)\[(?P<index>\d+)\]$")


@dataclass
class Install:
    """One ``helm upgrade --install RELEASE CHART -n NAMESPACE --set ...`` command."""

    release: str
    chart: str
    namespace: str
    sets: list[str] = field(default_factory=list)

    def values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for assignment in self.sets:
            key, _, raw = assignment.partition("=")
            _assign(values, key.split("."), _scalar(raw))
        return values


def _scalar(raw: str) -> Any:
    """What Helm's ``--set`` makes of a value: integers, booleans, null, else a string."""
    if re.fullmatch(r"-?[0-9]+", raw):
        return int(raw)
    return {"true": True, "false": False, "null": None}.get(raw, raw)


def _assign(into: dict[str, Any], path: list[str], value: Any) -> None:
    head, rest = path[0], path[1:]
    match = _INDEX.match(head)
    if match is None:
        if rest:
            _assign(into.setdefault(head, {}), rest, value)
        else:
            into[head] = value
        return
    items: list[Any] = into.setdefault(match["key"], [])
    index = int(match["index"])
    items.extend({} for _ in range(index + 1 - len(items)))
    if rest:
        _assign(items[index], rest, value)
    else:
        items[index] = value


def kind_up_installs() -> list[Install]:
    task = yaml.safe_load((REPO / "Taskfile.yml").read_text())["tasks"]["kind:up"]
    tag = str(task["vars"]["TAG"])
    installs = []
    for command in task["cmds"]:
        if not isinstance(command, str) or not command.startswith("helm upgrade --install"):
            continue
        words = shlex.split(command.replace("{{.TAG}}", tag))
        release, chart = words[3], words[4]
        install = Install(release, chart, words[words.index("-n") + 1])
        install.sets = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
        installs.append(install)
    return installs


INSTALLS = {install.chart: install for install in kind_up_installs()}


def rendered(install: Install) -> Rendered:
    with helm.Chart.load(REPO / install.chart) as chart:
        return render(chart, install.values(), release=install.release, namespace=install.namespace)


def test_both_charts_are_installed() -> None:
    assert sorted(INSTALLS) == ["charts/tenantry", "charts/vllm-fleet"]
    assert all((REPO / chart / "Chart.yaml").is_file() for chart in INSTALLS)


@pytest.mark.parametrize("chart", sorted(INSTALLS))
def test_the_values_pass_the_schema_and_strict_lint(chart: str) -> None:
    install = INSTALLS[chart]
    assert lint_findings(REPO / chart, install.values()) == []
    for obj in rendered(install).objects:
        validate(obj)


def test_the_fleet_fits_a_kind_node_and_claims_no_volume() -> None:
    fleet = rendered(INSTALLS["charts/vllm-fleet"])
    assert fleet.of_kind("PersistentVolumeClaim") == []  # no 100Gi claim waiting for storage
    (deployment,) = fleet.of_kind("Deployment")
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    requests = server["resources"]["requests"]
    assert requests["cpu"] == "500m"
    assert requests["memory"] == "2Gi"


def test_the_control_plane_is_pointed_at_the_fleets_service() -> None:
    fleet_install = INSTALLS["charts/vllm-fleet"]
    (service,) = rendered(fleet_install).of_kind("Service")
    port = service["spec"]["ports"][0]["port"]
    expected = f"http://{service['metadata']['name']}.{fleet_install.namespace}.svc:{port}/v1"
    assert INSTALLS["charts/tenantry"].values()["platformModelsUrl"] == expected


def test_set_flags_become_values_the_way_helm_reads_them() -> None:
    install = Install(
        "r", "c", "ns", ["models[0].name=a", "models[0].maxModelLen=4096", "x.y=true"]
    )
    assert install.values() == {"models": [{"name": "a", "maxModelLen": 4096}], "x": {"y": True}}
