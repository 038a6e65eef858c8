"""The Kubernetes objects of one tenant's gateway, built as plain data by pure functions.

Every ``make_*`` function takes the Tenant's typed spec (with plan defaults filled in, see
:func:`operators.tenant.spec.parse_spec`), the Tenant's name and namespace and its owner data,
and returns the object as a dict. Nothing here calls an API, so the objects are tested as data
and applied elsewhere (:mod:`operators.tenant.apply`).

All children are named after the Tenant and carry an ownerReference to it, so Kubernetes'
garbage collector removes them with it. The one exception is a volume claim whose Tenant says
``retainPolicy: retain``: the garbage collector deletes every dependent of a deleted owner,
and the volume is the tenant's memory, so a retained claim carries no ownerReference. It keeps
its name, so a Tenant of the same name adopts it again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from operators.tenant.spec import API_VERSION, KIND, Peer, ResourceList, TenantSpec

GATEWAY_PORT: Final = 8080
SERVICE_PORT: Final = 80
PORT_NAME: Final = "http"
GATEWAY_UID: Final = 10001
"""The gateway image's non-root user and group (``USER 10001:10001``)."""

BUNDLE_DIR: Final = "/etc/tenantry/bundle"
RUNTIME_DIR: Final = "/run/tenantry"
DATA_DIR: Final = "/data"
TMP_DIR: Final = "/tmp"  # noqa: S108  (an emptyDir of the pod's own, not a shared /tmp)

APP_NAME: Final = "tenant-gateway"
MANAGED_BY: Final = "tenantry-operator"
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_TENANT_ID: Final = "tenantry.dev/tenant-id"
LABEL_SLUG: Final = "tenantry.dev/slug"
SPEC_HASH_ANNOTATION: Final = "tenantry.dev/spec-hash"

PRIVATE_IPV4: Final = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",  # carrier-grade NAT, used by some pod networks
    "169.254.0.0/16",  # link-local, where cloud metadata services answer
    "127.0.0.0/8",
)
PRIVATE_IPV6: Final = ("fc00::/7", "fe80::/10", "::1/128")
PUBLIC_TLS_PORT: Final = 443


@dataclass(frozen=True)
class Owner:
    """The Tenant that owns the children: what an ownerReference needs."""

    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


# -- names and labels ----------------------------------------------------------------------


def volume_claim_name(name: str) -> str:
    return f"{name}-data"


def selector_labels(name: str) -> dict[str, str]:
    """The labels that pick out the tenant's pods (Deployment, Service, NetworkPolicy)."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: name}


def labels(spec: TenantSpec, name: str) -> dict[str, str]:
    return {
        **selector_labels(name),
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PART_OF: "tenantry",
        LABEL_TENANT_ID: spec.tenant_id,
        LABEL_SLUG: spec.slug,
    }


def _metadata(
    spec: TenantSpec, name: str, namespace: str, owner: Owner | None, *, object_name: str = ""
) -> dict[str, Any]:
    """Metadata of a child of Tenant ``name``, itself called ``object_name`` (default ``name``)."""
    metadata: dict[str, Any] = {
        "name": object_name or name,
        "namespace": namespace,
        "labels": labels(spec, name),
    }
    if owner is not None:
        metadata["ownerReferences"] = [owner.reference()]
    return metadata


def spec_hash(spec: TenantSpec) -> str:
    """A short digest of the spec; as a pod annotation it rolls the pod when the spec changes."""
    return hashlib.sha256(msgspec.json.encode(spec)).hexdigest()[:16]


# -- the objects ---------------------------------------------------------------------------


def make_service_account(
    spec: TenantSpec, name: str, namespace: str, owner: Owner
) -> dict[str, Any]:
    """The gateway's own identity, with no token mounted: it has no business with the API."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(spec, name, namespace, owner),
        "automountServiceAccountToken": False,
    }


def make_pvc(spec: TenantSpec, name: str, namespace: str, owner: Owner) -> dict[str, Any]:
    """The tenant's memory volume; owned by the Tenant only when it is not to be retained."""
    retained = spec.storage.retain_policy == "retain"
    claim: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.storage.size}},
    }
    if spec.storage.storage_class_name:
        claim["storageClassName"] = spec.storage.storage_class_name
    metadata = _metadata(
        spec, name, namespace, None if retained else owner, object_name=volume_claim_name(name)
    )
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": claim,
    }


def _quantities(values: ResourceList) -> dict[str, str]:
    return {k: v for k, v in (("cpu", values.cpu), ("memory", values.memory)) if v}


def _resources(spec: TenantSpec) -> dict[str, Any]:
    if spec.resources is None:
        return {}
    out = {
        "requests": _quantities(spec.resources.requests),
        "limits": _quantities(spec.resources.limits),
    }
    return {k: v for k, v in out.items() if v}


def _env(spec: TenantSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    if spec.platform_models_url:
        env.append({"name": "TENANTRY_PLATFORM_MODELS_URL", "value": spec.platform_models_url})
    return env


def _probe(path: str, period: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def _container(spec: TenantSpec) -> dict[str, Any]:
    return {
        "name": "gateway",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["tenantry"],
        "args": [
            "gateway",
            "--runtime-dir",
            RUNTIME_DIR,
            "--bundle-dir",
            BUNDLE_DIR,
            "--data-dir",
            DATA_DIR,
            "--host",
            "0.0.0.0",
            "--port",
            str(GATEWAY_PORT),
        ],
        "ports": [{"name": PORT_NAME, "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        "env": _env(spec),
        "resources": _resources(spec),
        "livenessProbe": _probe("/healthz", 10),
        "readinessProbe": _probe("/readyz", 5),
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "bundle", "mountPath": BUNDLE_DIR, "readOnly": True},
            {"name": "runtime", "mountPath": RUNTIME_DIR},
            {"name": "tmp", "mountPath": TMP_DIR},
        ],
    }


def _volumes(spec: TenantSpec, name: str) -> list[dict[str, Any]]:
    return [
        {"name": "data", "persistentVolumeClaim": {"claimName": volume_claim_name(name)}},
        # 0440: readable by the gateway's group (fsGroup) only.
        {"name": "bundle", "secret": {"secretName": spec.bundle_secret_name, "defaultMode": 0o440}},
        {"name": "runtime", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": GATEWAY_UID,
        "runAsGroup": GATEWAY_UID,
        "fsGroup": GATEWAY_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def make_deployment(spec: TenantSpec, name: str, namespace: str, owner: Owner) -> dict[str, Any]:
    """One gateway pod (none while suspended), replaced rather than rolled: ``Recreate``,
    because two pods must never hold the same ReadWriteOnce volume and runtime lock."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec, name, namespace, owner),
        "spec": {
            "replicas": spec.desired_replicas,
            "revisionHistoryLimit": 3,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector_labels(name)},
            "template": {
                "metadata": {
                    "labels": labels(spec, name),
                    "annotations": {SPEC_HASH_ANNOTATION: spec_hash(spec)},
                },
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": _pod_security(),
                    "containers": [_container(spec)],
                    "volumes": _volumes(spec, name),
                },
            },
        },
    }


def make_service(spec: TenantSpec, name: str, namespace: str, owner: Owner) -> dict[str, Any]:
    """The gateway's stable in-cluster address: ``<name>.<namespace>.svc:80``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, name, namespace, owner),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(name),
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": SERVICE_PORT,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def _peer(peer: Peer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if peer.namespace_selector is not None:
        out["namespaceSelector"] = {"matchLabels": dict(peer.namespace_selector.match_labels)}
    if peer.pod_selector is not None:
        out["podSelector"] = {"matchLabels": dict(peer.pod_selector.match_labels)}
    return out


def public_ports(spec: TenantSpec) -> list[int]:
    """TCP ports open to the public internet: 443, and the port of every model route."""
    ports = {PUBLIC_TLS_PORT}
    for route in spec.model_routes:
        parts = urlsplit(route.base_url)
        ports.add(parts.port or (443 if parts.scheme == "https" else 80))
    return sorted(ports)


def _egress(spec: TenantSpec) -> list[dict[str, Any]]:
    network = spec.effective_network
    dns = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": network.dns_namespace}}
    }
    public = [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_IPV4)}},
        {"ipBlock": {"cidr": "::/0", "except": list(PRIVATE_IPV6)}},
    ]
    return [
        {"to": [_peer(network.control_plane)]},
        {"to": [_peer(network.model_fleet)]},
        {
            "to": [dns],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        },
        {"to": public, "ports": [{"port": p, "protocol": "TCP"} for p in public_ports(spec)]},
    ]


def make_network_policy(
    spec: TenantSpec, name: str, namespace: str, owner: Owner
) -> dict[str, Any]:
    """In: the platform's ingress and the control plane, on the gateway port only. Out: the
    control plane, the vLLM fleet, DNS, and public addresses (providers, chat channels)."""
    network = spec.effective_network
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(spec, name, namespace, owner),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [_peer(network.ingress), _peer(network.control_plane)],
                    "ports": [{"port": PORT_NAME, "protocol": "TCP"}],
                }
            ],
            "egress": _egress(spec),
        },
    }


def make_children(
    spec: TenantSpec, name: str, namespace: str, owner: Owner
) -> list[dict[str, Any]]:
    """Every child, in the order to apply them: fences and storage before the pod."""
    return [
        make_service_account(spec, name, namespace, owner),
        make_network_policy(spec, name, namespace, owner),
        make_pvc(spec, name, namespace, owner),
        make_service(spec, name, namespace, owner),
        make_deployment(spec, name, namespace, owner),
    ]
