"""The gateway's Kubernetes objects, built from one spec and checked as plain data: whole
objects against what we expect, the rules that vary with the spec, and every object against
the Kubernetes schemas."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from operators.tenant import manifests
from operators.tenant.manifests import Owner
from operators.tenant.spec import TenantSpec, parse_spec

NAME = "tenant-acme"
NAMESPACE = "tenants"
OWNER = Owner(name=NAME, uid="7f1c0000-0000-4000-8000-0000000000a1")
OWNER_REFERENCE = {
    "apiVersion": "tenantry.dev/v1alpha1",
    "kind": "Tenant",
    "name": NAME,
    "uid": OWNER.uid,
    "controller": True,
    "blockOwnerDeletion": True,
}
LABELS = {
    "app.kubernetes.io/name": "tenant-gateway",
    "app.kubernetes.io/instance": NAME,
    "app.kubernetes.io/managed-by": "tenantry-operator",
    "app.kubernetes.io/part-of": "tenantry",
    "tenantry.dev/tenant-id": "t-1",
    "tenantry.dev/slug": "acme",
}
SELECTOR = {"app.kubernetes.io/name": "tenant-gateway", "app.kubernetes.io/instance": NAME}


def make_spec(**fields: Any) -> TenantSpec:
    return parse_spec(
        {
            "tenantId": "t-1",
            "slug": "acme",
            "plan": "pro",
            "image": "registry.example/tenantry/tenant-gateway:1.0",
            "bundleSecretName": "tenant-acme-bundle",
            "platformModelsUrl": "http://vllm.fleet:8000/v1",
            **fields,
        }
    )


def metadata(name: str = NAME, *, owned: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NAMESPACE, "labels": LABELS}
    if owned:
        meta["ownerReferences"] = [OWNER_REFERENCE]
    return meta


def test_the_service_account_mounts_no_token() -> None:
    assert manifests.make_service_account(make_spec(), NAME, NAMESPACE, OWNER) == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(),
        "automountServiceAccountToken": False,
    }


def test_a_volume_to_delete_with_the_tenant_is_owned_by_it() -> None:
    spec = make_spec(storage={"retainPolicy": "delete", "storageClassName": "fast-ssd"})
    assert manifests.make_pvc(spec, NAME, NAMESPACE, OWNER) == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(f"{NAME}-data"),
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "5Gi"}},
            "storageClassName": "fast-ssd",
        },
    }


def test_a_retained_volume_has_no_owner_so_it_outlives_the_tenant() -> None:
    spec = make_spec(storage={"retainPolicy": "retain", "size": "2Gi"})
    assert manifests.make_pvc(spec, NAME, NAMESPACE, OWNER) == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(f"{NAME}-data", owned=False),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    }


def test_the_deployment_runs_one_hardened_gateway() -> None:
    spec = make_spec()
    assert manifests.make_deployment(spec, NAME, NAMESPACE, OWNER) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": SELECTOR},
            "template": {
                "metadata": {
                    "labels": LABELS,
                    "annotations": {"tenantry.dev/spec-hash": manifests.spec_hash(spec)},
                },
                "spec": {
                    "serviceAccountName": NAME,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "gateway",
                            "image": "registry.example/tenantry/tenant-gateway:1.0",
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["tenantry"],
                            "args": [
                                "gateway",
                                "--runtime-dir",
                                "/run/tenantry",
                                "--bundle-dir",
                                "/etc/tenantry/bundle",
                                "--data-dir",
                                "/data",
                                "--host",
                                "0.0.0.0",
                                "--port",
                                "8080",
                            ],
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                            "env": [
                                {
                                    "name": "TENANTRY_PLATFORM_MODELS_URL",
                                    "value": "http://vllm.fleet:8000/v1",
                                }
                            ],
                            "resources": {
                                "requests": {"cpu": "250m", "memory": "512Mi"},
                                "limits": {"cpu": "1", "memory": "1Gi"},
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 10,
                                "timeoutSeconds": 2,
                                "failureThreshold": 3,
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": "http"},
                                "periodSeconds": 5,
                                "timeoutSeconds": 2,
                                "failureThreshold": 3,
                            },
                            "securityContext": {
                                "runAsNonRoot": True,
                                "readOnlyRootFilesystem": True,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "data", "mountPath": "/data"},
                                {
                                    "name": "bundle",
                                    "mountPath": "/etc/tenantry/bundle",
                                    "readOnly": True,
                                },
                                {"name": "runtime", "mountPath": "/run/tenantry"},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": f"{NAME}-data"}},
                        {
                            "name": "bundle",
                            "secret": {"secretName": "tenant-acme-bundle", "defaultMode": 0o440},
                        },
                        {"name": "runtime", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }


@pytest.mark.parametrize(
    ("fields", "replicas"),
    [
        ({}, 1),
        ({"suspended": True}, 0),
        ({"replicas": 0}, 0),
        ({"suspended": True, "replicas": 1}, 0),
    ],
)
def test_a_suspended_or_scaled_down_tenant_runs_no_pod(
    fields: dict[str, Any], replicas: int
) -> None:
    deployment = manifests.make_deployment(make_spec(**fields), NAME, NAMESPACE, OWNER)
    assert deployment["spec"]["replicas"] == replicas


def test_any_spec_change_rolls_the_pod_and_none_does_not() -> None:
    def pod_hash(spec: TenantSpec) -> str:
        deployment = manifests.make_deployment(spec, NAME, NAMESPACE, OWNER)
        annotations: dict[str, str] = deployment["spec"]["template"]["metadata"]["annotations"]
        return annotations["tenantry.dev/spec-hash"]

    assert pod_hash(make_spec()) == pod_hash(make_spec())
    assert pod_hash(make_spec()) != pod_hash(make_spec(image="registry.example/gw:1.1"))
    assert pod_hash(make_spec()) != pod_hash(make_spec(plan="enterprise"))


def test_no_models_url_means_no_variable() -> None:
    spec = parse_spec({"tenantId": "t", "slug": "a", "image": "i:1", "bundleSecretName": "b"})
    container = manifests.make_deployment(spec, NAME, NAMESPACE, OWNER)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["env"] == []


def test_the_service_sends_port_80_to_the_gateway() -> None:
    assert manifests.make_service(make_spec(), NAME, NAMESPACE, OWNER) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(),
        "spec": {
            "type": "ClusterIP",
            "selector": SELECTOR,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


PUBLIC_V4 = {
    "ipBlock": {
        "cidr": "0.0.0.0/0",
        "except": [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "169.254.0.0/16",
            "127.0.0.0/8",
        ],
    }
}
PUBLIC_V6 = {"ipBlock": {"cidr": "::/0", "except": ["fc00::/7", "fe80::/10", "::1/128"]}}
CONTROL_PLANE = {
    "namespaceSelector": {"matchLabels": {}},
    "podSelector": {
        "matchLabels": {
            "app.kubernetes.io/part-of": "tenantry",
            "app.kubernetes.io/component": "control-plane",
        }
    },
}
MODEL_FLEET = {
    "namespaceSelector": {"matchLabels": {}},
    "podSelector": {
        "matchLabels": {
            "app.kubernetes.io/part-of": "tenantry",
            "app.kubernetes.io/component": "model-server",
        }
    },
}


def test_the_network_policy_fences_the_gateway_in_both_directions() -> None:
    assert manifests.make_network_policy(make_spec(), NAME, NAMESPACE, OWNER) == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(),
        "spec": {
            "podSelector": {"matchLabels": SELECTOR},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                            }
                        },
                        CONTROL_PLANE,
                    ],
                    "ports": [{"port": "http", "protocol": "TCP"}],
                }
            ],
            "egress": [
                {"to": [CONTROL_PLANE]},
                {"to": [MODEL_FLEET]},
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                            }
                        }
                    ],
                    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                },
                {"to": [PUBLIC_V4, PUBLIC_V6], "ports": [{"port": 443, "protocol": "TCP"}]},
            ],
        },
    }


def test_the_network_policy_follows_the_specs_peers_and_model_routes() -> None:
    spec = make_spec(
        modelRoutes=[
            {"name": "byok", "baseUrl": "https://llm.example.com:8443/v1"},
            {"name": "plain", "baseUrl": "http://llm.example.org/v1"},
            {"name": "tls", "baseUrl": "https://api.openai.com/v1"},
        ],
        network={
            "ingress": {"podSelector": {"matchLabels": {"app": "gateway-proxy"}}},
            "controlPlane": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cp"}}
            },
            "dnsNamespace": "dns-system",
        },
    )
    policy = manifests.make_network_policy(spec, NAME, NAMESPACE, OWNER)["spec"]

    cp = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cp"}}}
    assert policy["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"app": "gateway-proxy"}}},
        cp,
    ]
    assert policy["egress"][0] == {"to": [cp]}
    assert policy["egress"][1] == {"to": [MODEL_FLEET]}  # untouched default
    assert policy["egress"][2]["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "dns-system"
    }
    assert policy["egress"][3]["ports"] == [
        {"port": 80, "protocol": "TCP"},
        {"port": 443, "protocol": "TCP"},
        {"port": 8443, "protocol": "TCP"},
    ]


def test_children_come_fences_first_pod_last_and_all_owned_but_a_retained_volume() -> None:
    children = manifests.make_children(make_spec(), NAME, NAMESPACE, OWNER)

    assert [c["kind"] for c in children] == [
        "ServiceAccount",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "Service",
        "Deployment",
    ]
    owned = [c["kind"] for c in children if "ownerReferences" in c["metadata"]]
    assert owned == ["ServiceAccount", "NetworkPolicy", "Service", "Deployment"]
    assert all(c["metadata"]["labels"] == LABELS for c in children)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"suspended": True, "storage": {"retainPolicy": "delete", "storageClassName": "gp3"}},
        {"modelRoutes": [{"name": "x", "baseUrl": "https://x.example:8443"}], "plan": "enterprise"},
    ],
)
def test_every_child_is_a_valid_kubernetes_object(fields: dict[str, Any]) -> None:
    for child in manifests.make_children(make_spec(**fields), NAME, NAMESPACE, OWNER):
        kubernetes_validate.validate(child, "1.30", strict=True)
