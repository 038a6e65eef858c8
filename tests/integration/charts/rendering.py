"""Render the charts with the real Helm engine and check objects against Kubernetes schemas.

Helm runs in-process through ``helm-python-sdk`` (no ``helm`` binary, no cluster); every
rendered object is validated with ``kubernetes-validate`` against the strict schemas of
:data:`KUBE_VERSION`, which reject unknown fields as well as wrong types.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[3]
CHARTS = REPO / "charts"
KUBE_VERSION = "1.30"
"""The oldest Kubernetes minor the charts support that kubernetes-validate ships schemas for."""

NOT_IN_KUBERNETES_SCHEMAS = frozenset(
    {"monitoring.coreos.com", "keda.sh", "gateway.networking.k8s.io"}
)
"""API groups of add-ons (Prometheus operator, KEDA, Gateway API) whose kinds
kubernetes-validate has no schemas for: objects of these groups get a shape check only."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

Obj = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    """What ``helm template`` would print: the objects and NOTES.txt."""

    objects: list[Obj]
    notes: str

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> Obj:
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def names(self) -> set[tuple[str, str]]:
        return {(o["kind"], o["metadata"]["name"]) for o in self.objects}


def render(
    chart: helm.Chart,
    values: dict[str, Any] | None = None,
    *,
    release: str = "tenantry",
    namespace: str = "tenantry",
) -> Rendered:
    """Render ``chart`` as an install of ``release`` into ``namespace``."""
    manifests = chart.render(values or {}, name=release, namespace=namespace, is_install=True)
    objects: list[Obj] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(objects, notes)


def api_group(obj: Obj) -> str:
    api_version: str = obj["apiVersion"]
    return api_version.rpartition("/")[0]


def validate(obj: Obj) -> None:
    """Validate one object against the Kubernetes schemas, or check the shape of an add-on's."""
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    if api_group(obj) in NOT_IN_KUBERNETES_SCHEMAS:
        check_shape(obj)
        return
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        raise AssertionError(
            f"{where} is not valid Kubernetes {KUBE_VERSION}: {path}: {exc.message}"
        ) from None
    except kubernetes_validate.SchemaNotFoundError as exc:
        raise AssertionError(f"{where}: {exc.message}") from None


def check_shape(obj: Obj) -> None:
    """What every object must have, for kinds without a schema here."""
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    assert set(obj) <= {"apiVersion", "kind", "metadata", "spec"}, f"{where}: {sorted(obj)}"
    assert re.fullmatch(r"[a-z0-9.-]+/v[0-9a-z]+", obj["apiVersion"]), where
    assert obj["kind"][:1].isupper(), where
    assert _DNS_LABEL.match(obj["metadata"]["name"]), where
    assert obj["metadata"].get("namespace"), f"{where} names no namespace"
    assert all(isinstance(v, str) for v in obj["metadata"].get("labels", {}).values()), where
    assert isinstance(obj.get("spec"), dict), f"{where} has no spec"
    assert obj["spec"], f"{where} has an empty spec"


def pod_specs(objects: list[Obj]) -> Iterator[tuple[str, Obj]]:
    """Every pod template (or pod) among ``objects``, with the name of its owner."""
    for obj in objects:
        if obj["kind"] == "Pod":
            yield obj["metadata"]["name"], obj["spec"]
        elif obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]
        elif obj["kind"] == "CronJob":
            yield obj["metadata"]["name"], obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def assert_hardened(owner: str, pod: Obj) -> None:
    """The restricted Pod Security profile, plus a read-only root, for one pod spec."""
    pod_context = pod.get("securityContext", {})
    assert pod_context.get("runAsNonRoot") is True, f"{owner}: pod may run as root"
    assert pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault", owner
    containers = pod["containers"] + pod.get("initContainers", [])
    for container in containers:
        where = f"{owner}/{container['name']}"
        context = container.get("securityContext")
        assert context, f"{where} has no securityContext"
        assert context.get("runAsNonRoot") is True, f"{where} may run as root"
        assert context.get("allowPrivilegeEscalation") is False, where
        assert context.get("readOnlyRootFilesystem") is True, f"{where} has a writable root"
        assert context.get("privileged", False) is False, where
        assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{where} keeps capabilities"
        assert not context.get("capabilities", {}).get("add"), f"{where} adds capabilities"
        assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert context.get("runAsUser", pod_context.get("runAsUser", 0)) != 0, f"{where} is uid 0"


def lint_findings(chart_dir: Path, values: dict[str, Any] | None = None) -> list[str]:
    """``helm lint --strict`` findings worse than info, as ``path: message`` lines."""
    report = helm.lint(chart_dir, values, strict=True, kube_version=f"v{KUBE_VERSION}.0")
    findings = [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]
    return findings + list(report["errors"])
