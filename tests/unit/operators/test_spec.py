"""The Tenant spec contract: what parses, what is refused and how clearly, the plan defaults,
and the resource the control plane builds from it."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import msgspec
import pytest

from operators.errors import InvalidTenantSpec, OperatorError
from operators.tenant.spec import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    Condition,
    ModelRoute,
    Network,
    ResourceList,
    Resources,
    Storage,
    TenantSpec,
    TenantStatus,
    check_tenant_name,
    endpoint_for,
    parse_spec,
    parse_status,
    tenant_resource,
)

MINIMAL = {
    "tenantId": "01a20000-0000-7000-8000-00000000c0de",
    "slug": "acme",
    "image": "registry.example/tenantry/tenant-gateway:1.0",
    "bundleSecretName": "tenant-acme-bundle",
}


def spec(**fields: Any) -> dict[str, Any]:
    return {**MINIMAL, **fields}


def test_the_constants_name_the_resource() -> None:
    assert (GROUP, VERSION, PLURAL, KIND) == ("tenantry.dev", "v1alpha1", "tenants", "Tenant")
    assert API_VERSION == "tenantry.dev/v1alpha1"


def test_a_minimal_spec_gets_the_free_plan_and_its_defaults() -> None:
    parsed = parse_spec(MINIMAL)

    assert parsed.tenant_id == MINIMAL["tenantId"]
    assert parsed.plan == "free"
    assert parsed.resources == Resources(
        requests=ResourceList(cpu="50m", memory="128Mi"),
        limits=ResourceList(cpu="250m", memory="256Mi"),
    )
    assert parsed.storage == Storage(size="1Gi", retain_policy="retain")
    assert parsed.image_pull_policy == "IfNotPresent"
    assert parsed.desired_replicas == 1
    assert parsed.effective_network == Network()


def test_a_full_spec_parses_field_by_field() -> None:
    parsed = parse_spec(
        spec(
            plan="pro",
            imagePullPolicy="Always",
            resources={"limits": {"memory": "3Gi"}},
            storage={"size": "10Gi", "storageClassName": "fast-ssd", "retainPolicy": "delete"},
            suspended=True,
            replicas=0,
            modelRoutes=[{"name": "openai", "baseUrl": "https://api.openai.com/v1"}],
            controlPlaneUrl="http://control-plane.tenantry:8080",
            platformModelsUrl="http://vllm.fleet:8000/v1",
            network={
                "dnsNamespace": "dns",
                "ingress": {"podSelector": {"matchLabels": {"a": "b"}}},
            },
        )
    )

    assert parsed.resources is not None
    # What the spec says wins; what it leaves out comes from the plan (pro).
    assert parsed.resources.limits == ResourceList(cpu="1", memory="3Gi")
    assert parsed.resources.requests == ResourceList(cpu="250m", memory="512Mi")
    assert parsed.storage == Storage(
        size="10Gi", storage_class_name="fast-ssd", retain_policy="delete"
    )
    assert parsed.model_routes == [ModelRoute(name="openai", base_url="https://api.openai.com/v1")]
    assert parsed.desired_replicas == 0
    assert parsed.effective_network.dns_namespace == "dns"
    assert parsed.effective_network.ingress.namespace_selector is None


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"slug": "Acme Corp"}, "$.slug"),
        ({"slug": "-acme"}, "$.slug"),
        ({"tenantId": ""}, "$.tenantId"),
        ({"image": ""}, "$.image"),
        ({"image": "has space:1"}, "$.image"),
        ({"replicas": 2}, "$.replicas"),
        ({"replicas": -1}, "$.replicas"),
        ({"suspended": "yes"}, "$.suspended"),
        ({"plan": ""}, "$.plan"),
        ({"imagePullPolicy": "Sometimes"}, "$.imagePullPolicy"),
        ({"storage": {"retainPolicy": "keep"}}, "$.storage.retainPolicy"),
        ({"storage": {"size": "lots"}}, "$.storage.size"),
        ({"storage": {"size": "500m"}}, "$.storage.size"),
        ({"resources": {"limits": {"cpu": "fast"}}}, "$.resources.limits.cpu"),
        ({"platformModelsUrl": "vllm:8000"}, "$.platformModelsUrl"),
        ({"modelRoutes": [{"name": "x"}]}, "baseUrl"),
        ({"bundleSecretName": "Not_A_Name"}, "$.bundleSecretName"),
        ({"network": {"ingress": {}}}, "namespaceSelector or a podSelector"),
        ({"colour": "blue"}, "unknown field `colour`"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(fields: dict[str, Any], complaint: str) -> None:
    with pytest.raises(InvalidTenantSpec) as refused:
        parse_spec(spec(**fields))

    assert complaint in str(refused.value)
    assert str(refused.value).startswith("invalid Tenant spec: ")
    assert refused.value.reason == "InvalidSpec"
    assert isinstance(refused.value, OperatorError)


@pytest.mark.parametrize("missing", sorted(MINIMAL))
def test_every_required_field_is_required(missing: str) -> None:
    body = {k: v for k, v in MINIMAL.items() if k != missing}
    with pytest.raises(InvalidTenantSpec, match=f"missing required field `{missing}`"):
        parse_spec(body)


@pytest.mark.parametrize("plan", ["free", "starter", "pro", "enterprise"])
def test_each_plan_gives_more_or_the_same(plan: str) -> None:
    parsed = parse_spec(spec(plan=plan))
    assert parsed.storage.size is not None
    assert parsed.resources is not None
    assert parsed.resources.limits.memory is not None


def test_an_unknown_plan_gets_the_free_plans_defaults() -> None:
    assert parse_spec(spec(plan="platinum")).resources == parse_spec(spec(plan="free")).resources


def test_the_tenant_resource_is_what_the_operator_parses_back() -> None:
    typed = TenantSpec(
        tenant_id="t-1",
        slug="acme",
        image="img:1",
        bundle_secret_name="tenant-t-1-bundle",
        plan="pro",
        storage=Storage(retain_policy="delete"),
    )

    body = tenant_resource("tenant-t-1", "tenants", typed, labels={"x": "y"})

    assert body == {
        "apiVersion": "tenantry.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": "tenant-t-1", "namespace": "tenants", "labels": {"x": "y"}},
        "spec": {
            "tenantId": "t-1",
            "slug": "acme",
            "image": "img:1",
            "bundleSecretName": "tenant-t-1-bundle",
            "plan": "pro",
            "storage": {"retainPolicy": "delete"},
        },
    }
    parsed = parse_spec(body["spec"])
    assert msgspec.structs.replace(parsed, resources=None, storage=typed.storage) == typed


@pytest.mark.parametrize(
    "name", ["tenant-acme", "t", "tenant-01a20000-0000-7000-8000-00000000c0de"]
)
def test_names_children_can_carry_are_accepted(name: str) -> None:
    check_tenant_name(name)


@pytest.mark.parametrize("name", ["1tenant", "Tenant", "tenant.acme", "tenant-", "t" * 58])
def test_names_children_cannot_carry_are_refused(name: str) -> None:
    with pytest.raises(InvalidTenantSpec, match="invalid Tenant name"):
        check_tenant_name(name)


def test_the_endpoint_is_the_services_dns_name() -> None:
    assert endpoint_for("tenant-acme", "tenants") == "http://tenant-acme.tenants.svc:80"


def test_a_status_reads_back_and_an_unreadable_one_is_empty() -> None:
    written = {
        "phase": "Running",
        "endpoint": "http://x",
        "observedGeneration": 3,
        "conditions": [{"type": "Ready", "status": "True", "reason": "GatewayReady"}],
        "kopf": {"progress": {}},  # other writers' fields are tolerated
    }
    status = parse_status(written)
    assert status.phase == "Running"
    assert status.condition("Ready") == Condition(
        type="Ready", status="True", reason="GatewayReady"
    )
    assert status.condition("Degraded") is None
    assert parse_status({"phase": "Exploded"}) == TenantStatus()
    assert parse_status(None) == TenantStatus()


def test_the_spec_module_imports_without_kopf_or_the_kubernetes_client() -> None:
    probe = (
        "import sys, operators.tenant.spec; "
        "assert not {'kopf', 'kubernetes'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)


def test_the_tenant_the_control_plane_applies_today_parses() -> None:
    from control_plane.runtime.kubernetes import resources

    tenant_id = "0190f5a2-7c3e-7a10-8b2f-3f1c2d4e5a6b"
    body = resources.tenant_resource(
        namespace="tenantry-tenants",
        installation="tenantry",
        tenant_id=tenant_id,
        slug="acme",
        plan="starter",
        image="ghcr.io/tenantry/tenant-gateway:0.1.0",
        suspended=False,
        platform_models_url="http://vllm.tenantry-models.svc:8000/v1",
        control_plane_url="http://tenantry-control-plane.tenantry.svc:8080",
        storage_class="standard-rwo",
        retain_volume=True,
    )

    check_tenant_name(body["metadata"]["name"])
    parsed = parse_spec(body["spec"])
    assert parsed.tenant_id == tenant_id
    assert parsed.storage == Storage(
        size="2Gi", storage_class_name="standard-rwo", retain_policy="retain"
    )
    assert (body["apiVersion"], body["kind"]) == (API_VERSION, KIND)
