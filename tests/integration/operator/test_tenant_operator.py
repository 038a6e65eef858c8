"""The Tenant operator, running for real against the Kubernetes API emulator: a Tenant gets its
gateway's objects, reports what its pod does, follows suspension, repairs what goes missing,
honours the volume's retain policy when deleted, and says so when it cannot do its job."""

from __future__ import annotations

import asyncio
from typing import Any

import kmock
import msgspec
import pytest

from operators.config import OperatorConfig
from operators.tenant.spec import plan_defaults
from tests.integration.operator.conftest import (
    NAMESPACE,
    TENANT_ID,
    TENANTS,
    Cluster,
    RunningOperator,
    tenant_body,
)
from tests.waiting import eventually

NAME = "tenant-acme"
UID = "7f1c0000-0000-4000-8000-0000000000a1"
CHILDREN = {
    "v1/serviceaccounts": NAME,
    "networking.k8s.io/v1/networkpolicies": NAME,
    "v1/persistentvolumeclaims": f"{NAME}-data",
    "v1/services": NAME,
    "apps/v1/deployments": NAME,
}
OWNER = {
    "apiVersion": "tenantry.dev/v1alpha1",
    "kind": "Tenant",
    "name": NAME,
    "uid": UID,
    "controller": True,
    "blockOwnerDeletion": True,
}


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions", [])}


async def running(cluster: Cluster, **tenant: Any) -> None:
    """A Tenant whose pod the kubelet reports ready."""
    await cluster.create_tenant(tenant_body(NAME, uid=UID, **tenant))
    await cluster.appears("apps/v1/deployments", NAME)
    await cluster.pod_ready(NAME)
    await cluster.tenant_status(NAME, phase="Running")


async def test_a_new_tenant_gets_its_gateway_objects_owned_by_it(
    cluster: Cluster, operator: RunningOperator
) -> None:
    await cluster.create_tenant(tenant_body(NAME, uid=UID, retain_policy="delete"))

    for resource, name in CHILDREN.items():
        child = await cluster.appears(resource, name)
        assert child["metadata"]["ownerReferences"] == [OWNER], resource
        assert child["metadata"]["labels"]["app.kubernetes.io/instance"] == NAME
        assert child["metadata"]["labels"]["tenantry.dev/tenant-id"] == TENANT_ID

    status = await cluster.tenant_status(NAME, phase="Provisioning", observedGeneration=1)
    assert status["endpoint"] == f"http://{NAME}.{NAMESPACE}.svc:80"
    assert conditions(status) == {
        "Ready": ("False", "GatewayNotReady"),
        "Progressing": ("True", "RollingOut"),
        "Degraded": ("False", "Starting"),
    }
    deployment = cluster.stored("apps/v1/deployments", NAME)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    assert pod["volumes"][1]["secret"]["secretName"] == f"{NAME}-bundle"
    assert pod["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}  # pro


async def test_the_tenant_runs_when_its_pod_is_ready_and_says_when_it_is_not(
    cluster: Cluster, operator: RunningOperator
) -> None:
    await cluster.create_tenant(tenant_body(NAME, uid=UID))
    await cluster.tenant_status(NAME, phase="Provisioning")

    await cluster.pod_ready(NAME)
    status = await cluster.tenant_status(NAME, phase="Running")
    assert status["endpoint"] == f"http://{NAME}.{NAMESPACE}.svc:80"
    assert conditions(status) == {
        "Ready": ("True", "GatewayReady"),
        "Progressing": ("False", "RolloutComplete"),
        "Degraded": ("False", "GatewayReady"),
    }

    await cluster.pod_ready(NAME, 0)
    status = await cluster.tenant_status(NAME, phase="Provisioning")
    assert conditions(status)["Degraded"] == ("True", "GatewayNotReady")
    assert conditions(status)["Ready"] == ("False", "GatewayNotReady")


async def test_a_suspended_tenant_has_no_pod_and_resumes(
    cluster: Cluster, operator: RunningOperator
) -> None:
    await running(cluster)

    await cluster.patch_tenant(NAME, {"spec": {"suspended": True}})

    async def scaled_to_zero() -> bool:
        deployment = cluster.stored("apps/v1/deployments", NAME) or {}
        return deployment.get("spec", {}).get("replicas") == 0

    await eventually(scaled_to_zero, what="the Deployment scaled to zero")
    status = await cluster.tenant_status(NAME, phase="Suspended", observedGeneration=2)
    assert conditions(status)["Progressing"] == ("True", "ScalingDown")

    await cluster.pod_ready(NAME, 0)  # the pod is gone
    stopped = {
        "Ready": ("False", "Suspended"),
        "Progressing": ("False", "Suspended"),
        "Degraded": ("False", "Suspended"),
    }
    await cluster.tenant_status(NAME, phase="Suspended", conditions=stopped)
    assert cluster.stored("v1/persistentvolumeclaims", f"{NAME}-data") is not None

    await cluster.patch_tenant(NAME, {"spec": {"suspended": False}})
    await cluster.tenant_status(NAME, phase="Provisioning", observedGeneration=3)
    await cluster.pod_ready(NAME)
    await cluster.tenant_status(NAME, phase="Running")


@pytest.mark.parametrize("resource", sorted(CHILDREN))
async def test_a_deleted_child_comes_back(
    cluster: Cluster, operator: RunningOperator, resource: str
) -> None:
    await cluster.create_tenant(tenant_body(NAME, uid=UID))
    await cluster.tenant_status(NAME, phase="Provisioning")
    name = CHILDREN[resource]
    delete = {
        "v1/serviceaccounts": cluster.core.delete_namespaced_service_account,
        "networking.k8s.io/v1/networkpolicies": cluster.networking.delete_namespaced_network_policy,
        "v1/persistentvolumeclaims": cluster.core.delete_namespaced_persistent_volume_claim,
        "v1/services": cluster.core.delete_namespaced_service,
        "apps/v1/deployments": cluster.apps.delete_namespaced_deployment,
    }[resource]

    await asyncio.to_thread(delete, name, NAMESPACE, _preload_content=False)
    assert cluster.stored(resource, name) is None

    restored = await cluster.appears(resource, name)
    assert restored["metadata"]["ownerReferences"] == [OWNER]


def _resources(deployment: dict[str, Any] | None) -> dict[str, Any]:
    containers = (deployment or {}).get("spec", {}).get("template", {}).get("spec", {})
    found: dict[str, Any] = containers.get("containers", [{}])[0].get("resources", {})
    return found


def _as_plan_says(plan: str, **limits: str) -> dict[str, Any]:
    defaults = plan_defaults(plan)
    return {
        "requests": msgspec.to_builtins(defaults.requests),
        "limits": {**msgspec.to_builtins(defaults.limits), **limits},
    }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"plan": "enterprise"}, _as_plan_says("enterprise")),
        ({"plan": "free"}, _as_plan_says("free")),
        ({"resources": {"limits": {"memory": "3Gi"}}}, _as_plan_says("pro", memory="3Gi")),
    ],
    ids=["bigger plan", "smaller plan", "own memory limit"],
)
async def test_a_new_plan_or_resources_resize_the_gateway(
    cluster: Cluster, operator: RunningOperator, change: dict[str, Any], expected: dict[str, Any]
) -> None:
    await running(cluster)  # on the pro plan
    before = _resources(cluster.stored("apps/v1/deployments", NAME))
    assert before == _as_plan_says("pro")
    assert before != expected

    await cluster.patch_tenant(NAME, {"spec": change})

    async def resized() -> dict[str, Any] | None:
        found = _resources(cluster.stored("apps/v1/deployments", NAME))
        return found if found != before else None

    assert await eventually(resized, what="the gateway's resources to change") == expected
    await cluster.tenant_status(NAME, phase="Running", observedGeneration=2)


@pytest.mark.parametrize(
    "operator_config",
    [OperatorConfig(resync_interval=0.3, retry_base_delay=0.2, retry_max_delay=1.0)],
)
async def test_a_hand_edit_of_a_child_is_put_back(
    cluster: Cluster, operator: RunningOperator
) -> None:
    await running(cluster)
    evil = {"name": "gateway", "image": "registry.example/someone-else:latest"}
    await asyncio.to_thread(
        cluster.apps.patch_namespaced_deployment,
        NAME,
        NAMESPACE,
        {"spec": {"template": {"spec": {"containers": [evil]}}}},
        _preload_content=False,
    )

    async def image() -> str | None:
        deployment = cluster.stored("apps/v1/deployments", NAME) or {}
        containers = deployment["spec"]["template"]["spec"]["containers"]
        found: str = containers[0]["image"]
        return found if found != evil["image"] else None

    assert await eventually(image, timeout=10, what="the image put back") == (
        "registry.example/tenantry/tenant-gateway:1.0"
    )


@pytest.mark.parametrize(("policy", "kept"), [("delete", False), ("retain", True)])
async def test_deleting_a_tenant_honours_the_volume_retain_policy(
    cluster: Cluster, operator: RunningOperator, policy: str, kept: bool
) -> None:
    await cluster.create_tenant(tenant_body(NAME, uid=UID, retain_policy=policy))
    claim = await cluster.appears("v1/persistentvolumeclaims", f"{NAME}-data")
    assert ("ownerReferences" in claim["metadata"]) is not kept
    tenant = cluster.stored(TENANTS, NAME)
    assert tenant is not None
    assert tenant["metadata"]["finalizers"] == ["tenantry.dev/finalizer"]

    await cluster.delete_tenant(NAME)
    await cluster.vanishes(TENANTS, NAME)  # the finalizer was released

    assert (cluster.stored("v1/persistentvolumeclaims", f"{NAME}-data") is not None) is kept


def _forbid_network_policies(request: kmock.Request) -> None:
    raise kmock.KubernetesError(
        status=403,
        reason="Forbidden",
        message='networkpolicies.networking.k8s.io is forbidden: User "system:serviceaccount:'
        'tenantry:operator" cannot create resource "networkpolicies"',
    )


async def test_a_refusal_by_the_api_fails_the_tenant_and_says_why(
    cluster: Cluster, operator: RunningOperator
) -> None:
    (
        cluster.emulator[
            kmock.action.CREATE, kmock.resource("networking.k8s.io/v1/networkpolicies")
        ]
        << _forbid_network_policies
    )

    await cluster.create_tenant(tenant_body(NAME, uid=UID))

    status = await cluster.tenant_status(NAME, phase="Failed")
    assert conditions(status)["Degraded"] == ("True", "Forbidden")
    assert conditions(status)["Ready"] == ("False", "Forbidden")
    assert "403" in status["message"]
    assert "cannot create resource" in status["message"]
    assert cluster.stored("apps/v1/deployments", NAME) is None, "no pod without its fence"


async def test_an_invalid_spec_fails_the_tenant_and_names_the_field(
    cluster: Cluster, operator: RunningOperator
) -> None:
    await cluster.create_tenant(tenant_body(NAME, uid=UID, slug="Not A Slug"))

    status = await cluster.tenant_status(NAME, phase="Failed")
    assert conditions(status)["Degraded"] == ("True", "InvalidSpec")
    assert "$.slug" in status["message"]
    assert status["observedGeneration"] == 1
    assert cluster.stored("apps/v1/deployments", NAME) is None


async def test_a_passing_api_failure_is_retried_without_failing_the_tenant(
    cluster: Cluster, operator: RunningOperator
) -> None:
    served: list[str] = []

    def unavailable_once(request: kmock.Request) -> None:
        if served:
            raise NotImplementedError  # from now on, the emulator answers as usual
        served.append(request.method)
        raise kmock.KubernetesError(status=503, reason="ServiceUnavailable", message="etcd")

    cluster.emulator[kmock.action.CREATE, kmock.resource("apps/v1/deployments")] << unavailable_once

    await cluster.create_tenant(tenant_body(NAME, uid=UID))

    # observedGeneration is only written by a reconcile that got through: the retry.
    await cluster.tenant_status(NAME, phase="Provisioning", observedGeneration=1)
    assert served == ["POST"]
    tenant = cluster.emulator.objects[TENANTS, NAMESPACE, NAME]
    phases = [(v or {}).get("status", {}).get("phase") for v in tenant.history]
    assert "Failed" not in phases
