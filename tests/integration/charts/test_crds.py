"""The chart carries the operator's CRD unchanged, and Helm installs it."""

from __future__ import annotations

import helm_python as helm
import yaml

from tests.integration.charts.rendering import CHARTS, REPO, validate

CRD_NAME = "tenants.tenantry.dev.yaml"
OPERATOR_CRD = REPO / "operators" / "crds" / CRD_NAME
CHART_CRD = CHARTS / "tenantry" / "crds" / CRD_NAME


def test_chart_crd_is_a_byte_identical_copy_of_the_operators() -> None:
    assert OPERATOR_CRD.is_file(), f"{OPERATOR_CRD.relative_to(REPO)} is missing"
    assert CHART_CRD.is_file(), f"{CHART_CRD.relative_to(REPO)} is missing"
    assert CHART_CRD.read_bytes() == OPERATOR_CRD.read_bytes(), (
        f"{CHART_CRD.relative_to(REPO)} differs from {OPERATOR_CRD.relative_to(REPO)}; "
        "copy the operator's file into the chart"
    )


def test_helm_loads_the_tenant_crd_from_the_chart(tenantry_chart: helm.Chart) -> None:
    crds = [yaml.safe_load(c["data"]) for c in tenantry_chart.crds]
    [crd] = [c for c in crds if c["metadata"]["name"] == "tenants.tenantry.dev"]
    validate(crd)  # kubernetes-validate ships the apiextensions.k8s.io/v1 schema
    spec = crd["spec"]
    assert spec["group"] == "tenantry.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "Tenant"
    [version] = [v for v in spec["versions"] if v["name"] == "v1alpha1"]
    assert version["served"]
    assert version["storage"]
    assert "status" in version["subresources"]
    columns = {c["name"].lower() for c in version.get("additionalPrinterColumns", [])}
    assert {"phase", "plan", "endpoint", "age"} <= columns
