"""Facts about the Dockerfiles that hold without building them (no Docker engine in CI)."""

from __future__ import annotations

import re
from pathlib import Path

import helm_python as helm
import pytest

from tests.integration.charts.rendering import REPO, render

IMAGES = REPO / "images"
DOCKERFILES = {
    "control-plane": "up",
    "tenant-gateway": "gateway",
    "operator": "operator",
}
UID = 10001


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    pairs = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


@pytest.fixture(params=list(DOCKERFILES), ids=list(DOCKERFILES))
def dockerfile(request: pytest.FixtureRequest) -> tuple[str, list[tuple[str, str]]]:
    return request.param, _instructions(IMAGES / f"{request.param}.Dockerfile")


def test_base_image_is_python_3_11_slim_pinned_by_digest(
    dockerfile: tuple[str, list[tuple[str, str]]],
) -> None:
    _, instructions = dockerfile
    [base] = [rest for kw, rest in instructions if kw == "ARG" and rest.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim(-\w+)?@sha256:[0-9a-f]{64}", base), (
        base
    )
    stages = [rest for kw, rest in instructions if kw == "FROM"]
    assert len(stages) >= 2, "build and run stages"
    assert all(s.split()[0] == "${PYTHON_IMAGE}" for s in stages), stages


def test_dependencies_come_from_the_lock_file(
    dockerfile: tuple[str, list[tuple[str, str]]],
) -> None:
    _, instructions = dockerfile
    syncs = [rest for kw, rest in instructions if kw == "RUN" and "uv sync" in rest]
    assert syncs
    for sync in syncs:
        assert "--frozen" in sync, sync
        assert "--no-dev" in sync, sync
    assert any(kw == "COPY" and "uv.lock" in rest for kw, rest in instructions)


def test_runs_as_an_unprivileged_numeric_user(
    dockerfile: tuple[str, list[tuple[str, str]]],
) -> None:
    _, instructions = dockerfile
    users = [rest for kw, rest in instructions if kw == "USER"]
    assert users, "no USER: the image would run as root"
    assert users[-1] == f"{UID}:{UID}"
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    assert any(kw == "USER" for kw, _ in instructions[last_from:]), "USER must be in the run stage"


def test_entrypoint_is_the_tenantry_command(
    dockerfile: tuple[str, list[tuple[str, str]]],
) -> None:
    name, instructions = dockerfile
    entrypoints = [rest for kw, rest in instructions if kw == "ENTRYPOINT"]
    commands = [rest for kw, rest in instructions if kw == "CMD"]
    assert entrypoints[-1] == '["tenantry"]'
    assert commands[-1].startswith(f'["{DOCKERFILES[name]}"')


def test_every_image_has_a_dockerignore_that_admits_only_the_project() -> None:
    for name in DOCKERFILES:
        text = (IMAGES / f"{name}.Dockerfile.dockerignore").read_text()
        patterns = [ln.strip() for ln in text.splitlines() if ln.strip() and ln[0] != "#"]
        assert patterns[0] == "*", f"{name}: the context must start from nothing"
        admitted = {p for p in patterns if p.startswith("!")}
        assert admitted == {
            "!pyproject.toml",
            "!uv.lock",
            "!README.md",
            "!control_plane/",
            "!tenant_gateway/",
            "!operators/",
        }, name


def test_charts_run_the_images_commands_as_their_user(tenantry_chart: helm.Chart) -> None:
    rendered = render(tenantry_chart)
    for name, command in (("control-plane", "up"), ("operator", "operator")):
        deployment = rendered.one("Deployment", f"tenantry-{name}")
        pod = deployment["spec"]["template"]["spec"]
        assert pod["containers"][0]["args"][0] == command
        assert pod["securityContext"]["runAsUser"] == UID
        assert pod["containers"][0]["image"].startswith(f"tenantry/{name}:")


@pytest.mark.parametrize("name", ["control-plane", "tenant-gateway", "operator"])
def test_every_image_has_a_healthcheck_on_its_own_endpoint(name: str) -> None:
    text = (IMAGES / f"{name}.Dockerfile").read_text()
    assert "HEALTHCHECK" in text
    port = "8081" if name == "operator" else "8080"
    assert f"http://127.0.0.1:{port}/healthz" in text
