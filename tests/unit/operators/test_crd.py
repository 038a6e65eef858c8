"""The Tenant CRD: a valid, structural definition whose schema accepts what the operator
accepts and refuses what it refuses, in step with the typed spec."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import msgspec
import pytest
import yaml

from operators.errors import InvalidTenantSpec
from operators.tenant import spec as contract
from operators.tenant.spec import Storage, TenantSpec, tenant_resource

CRD_FILE = Path(__file__).parents[3] / "operators" / "crds" / "tenants.tenantry.dev.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    return loaded


@pytest.fixture(scope="module")
def schema(crd: dict[str, Any]) -> dict[str, Any]:
    [version] = crd["spec"]["versions"]
    found: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return found


def sample(**spec: Any) -> dict[str, Any]:
    typed = TenantSpec(
        tenant_id="01a20000-0000-7000-8000-00000000c0de",
        slug="acme",
        image="registry.example/tenantry/tenant-gateway:1.0",
        bundle_secret_name="tenant-acme-bundle",
        plan="pro",
        storage=Storage(size="5Gi", retain_policy="delete"),
        platform_models_url="http://vllm.fleet:8000/v1",
    )
    body = tenant_resource("tenant-acme", "tenants", typed)
    body["spec"].update(spec)
    return body


def errors(schema: dict[str, Any], body: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [".".join(map(str, e.path)) for e in validator.iter_errors(body)]


def test_the_crd_is_a_valid_custom_resource_definition(crd: dict[str, Any]) -> None:
    kubernetes_validate.validate(crd, "1.30", strict=True)


def test_the_crd_names_the_namespaced_tenant_resource(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == contract.CRD_NAME == "tenants.tenantry.dev"
    assert spec["group"] == contract.GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == contract.KIND
    assert spec["names"]["plural"] == contract.PLURAL
    assert spec["names"]["shortNames"] == [contract.SHORT_NAME]
    [version] = spec["versions"]
    assert version["name"] == contract.VERSION
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Phase": ".status.phase",
        "Plan": ".spec.plan",
        "Endpoint": ".status.endpoint",
        "Age": ".metadata.creationTimestamp",
    }


def _nodes(node: dict[str, Any], path: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")


def test_the_schema_is_structural(schema: dict[str, Any]) -> None:
    for path, node in _nodes(schema):
        preserved = node.get("x-kubernetes-preserve-unknown-fields") is True
        assert "type" in node or preserved, f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        assert not {"$ref", "definitions", "dependencies", "id"} & set(node), path


def test_the_schema_has_the_specs_fields_and_no_others(schema: dict[str, Any]) -> None:
    def camel_fields(struct: type[msgspec.Struct]) -> set[str]:
        return set(struct.__struct_encode_fields__)

    spec_schema = schema["properties"]["spec"]
    assert set(spec_schema["properties"]) == camel_fields(TenantSpec)
    assert set(spec_schema["required"]) == {
        "tenantId",
        "slug",
        "image",
        "bundleSecretName",
    }
    assert set(spec_schema["properties"]["storage"]["properties"]) == camel_fields(Storage)
    assert set(spec_schema["properties"]["network"]["properties"]) == camel_fields(contract.Network)
    status_schema = schema["properties"]["status"]["properties"]
    assert set(status_schema) - {"kopf"} == camel_fields(contract.TenantStatus)


def test_the_schemas_patterns_are_the_specs(schema: dict[str, Any]) -> None:
    spec = schema["properties"]["spec"]["properties"]
    assert spec["slug"]["pattern"] == contract.DNS_LABEL
    assert spec["tenantId"]["pattern"] == contract.LABEL_VALUE
    assert spec["storage"]["properties"]["size"]["pattern"] == contract.STORAGE_SIZE
    assert spec["resources"]["properties"]["limits"]["properties"]["cpu"]["pattern"] == (
        contract.QUANTITY
    )
    assert spec["platformModelsUrl"]["pattern"] == contract.HTTP_URL
    assert spec["bundleSecretName"]["pattern"] == contract.DNS_SUBDOMAIN
    assert spec["storage"]["properties"]["retainPolicy"]["enum"] == ["retain", "delete"]
    assert spec["replicas"]["minimum"] == 0
    assert spec["replicas"]["maximum"] == 1
    for path, node in _nodes(schema):
        if "pattern" in node:
            re.compile(node["pattern"])  # ECMA-ish patterns Python can read too
            assert node["pattern"].startswith("^"), path
            assert node["pattern"].endswith("$"), path


def test_the_schema_accepts_the_tenant_the_control_plane_builds(schema: dict[str, Any]) -> None:
    assert errors(schema, sample()) == []
    full = sample(
        suspended=True,
        replicas=0,
        imagePullPolicy="Always",
        resources={"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1"}},
        modelRoutes=[{"name": "openai", "baseUrl": "https://api.openai.com/v1"}],
        controlPlaneUrl="http://control-plane.tenantry:8080",
        network={
            "ingress": {"namespaceSelector": {"matchLabels": {"a": "b"}}},
            "controlPlane": {"podSelector": {"matchLabels": {}}},
            "dnsNamespace": "kube-system",
        },
    )
    assert errors(schema, full) == []
    contract.parse_spec(full["spec"])  # and the operator agrees


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"slug": "Acme"}, "spec.slug"),
        ({"replicas": 2}, "spec.replicas"),
        ({"storage": {"retainPolicy": "keep"}}, "spec.storage.retainPolicy"),
        ({"storage": {"size": "five gigs"}}, "spec.storage.size"),
        ({"resources": {"limits": {"memory": "1 GB"}}}, "spec.resources.limits.memory"),
        ({"suspended": "no"}, "spec.suspended"),
        ({"imagePullPolicy": "Sometimes"}, "spec.imagePullPolicy"),
        ({"modelRoutes": [{"name": "x"}]}, "spec.modelRoutes.0"),
        ({"network": {"ingress": {}}}, "spec.network.ingress"),
        ({"platformModelsUrl": "ftp://x"}, "spec.platformModelsUrl"),
    ],
)
def test_the_schema_refuses_what_the_operator_refuses(
    schema: dict[str, Any], spec: dict[str, Any], where: str
) -> None:
    body = sample(**spec)
    assert where in errors(schema, body)
    with pytest.raises(InvalidTenantSpec):
        contract.parse_spec(body["spec"])


def test_the_schema_requires_a_spec_and_its_required_fields(schema: dict[str, Any]) -> None:
    body = sample()
    del body["spec"]["image"]
    assert errors(schema, body) == ["spec"]
    assert errors(schema, {"apiVersion": "tenantry.dev/v1alpha1", "kind": "Tenant"}) == [""]


def test_the_schema_accepts_the_status_the_operator_writes(schema: dict[str, Any]) -> None:
    body = sample()
    body["status"] = {
        "phase": "Running",
        "endpoint": "http://tenant-acme.tenants.svc:80",
        "message": "the gateway is ready",
        "observedGeneration": 2,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "GatewayReady",
                "message": "the gateway is ready",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }
    assert errors(schema, body) == []
    body["status"]["phase"] = "Exploded"
    assert errors(schema, body) == ["status.phase"]
