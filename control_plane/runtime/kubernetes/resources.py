"""The Kubernetes objects the control plane owns for a tenant, as plain data.

Two per tenant, both server-side-applied by :mod:`control_plane.runtime.kubernetes.runtime`:
the ``Tenant`` custom resource (``tenants.tenantry.dev/v1alpha1``, reconciled into a pod,
volume, service and network policy by the operator) and the Secret holding the gateway's
sealed bundle (ciphertexts and digests only) and its identity token, mounted read-only into
the gateway pod. With a namespace per tenant, a third: the tenant's Namespace, labelled with
the installation and the tenant, so that only a namespace made for that tenant is ever
deleted with it. Everything else is the operator's.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from operators.tenant.spec import GROUP, KIND, PLURAL, VERSION, Storage, TenantSpec
from operators.tenant.spec import tenant_resource as operator_tenant_resource
from tenant_gateway.contract import BUNDLE_FILE, IDENTITY_FILE, GatewayBundle

__all__ = [
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "bundle_secret",
    "tenant_namespace",
    "tenant_resource",
]

FIELD_MANAGER = "tenantry-control-plane"

LABEL_INSTALLATION = "tenantry.dev/installation"
LABEL_TENANT_ID = "tenantry.dev/tenant-id"
LABEL_SLUG = "tenantry.dev/slug"

DEFAULT_RETAIN_POLICY = Storage().retain_policy
"""The retain policy of a Tenant whose spec names none."""


def tenant_name(tenant_id: str) -> str:
    """The Tenant resource's name: from the id, so a reused slug never collides with a
    tenant that is still being deleted."""
    return f"tenant-{tenant_id}"


def bundle_secret_name(tenant_id: str) -> str:
    return f"tenant-{tenant_id}-bundle"


def labels(installation: str, tenant_id: str, slug: str) -> dict[str, str]:
    return {
        LABEL_INSTALLATION: installation,
        LABEL_TENANT_ID: tenant_id,
        LABEL_SLUG: slug,
        "app.kubernetes.io/managed-by": "tenantry",
    }


def tenant_namespace(*, name: str, installation: str, tenant_id: str, slug: str) -> dict[str, Any]:
    """The tenant's own namespace; its gateway runs under the restricted pod security level,
    as in the chart's shared tenants namespace."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                **labels(installation, tenant_id, slug),
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }


def bundle_secret(
    *,
    namespace: str,
    installation: str,
    bundle: GatewayBundle,
    identity_token: str | None,
) -> dict[str, Any]:
    data = {BUNDLE_FILE: base64.b64encode(msgspec.json.encode(bundle)).decode()}
    if identity_token is not None:
        data[IDENTITY_FILE] = base64.b64encode(identity_token.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": bundle_secret_name(bundle.tenant_id),
            "namespace": namespace,
            "labels": labels(installation, bundle.tenant_id, bundle.tenant_slug),
        },
        "type": "Opaque",
        "data": data,
    }


def tenant_resource(
    *,
    namespace: str,
    installation: str,
    tenant_id: str,
    slug: str,
    plan: str,
    image: str,
    suspended: bool,
    platform_models_url: str | None,
    control_plane_url: str | None,
    storage_class: str | None,
    retain_volume: bool,
) -> dict[str, Any]:
    """The Tenant resource, built with the operator's published spec type, so the control
    plane can only write what the operator reads."""
    spec = TenantSpec(
        tenant_id=tenant_id,
        slug=slug,
        plan=plan,
        image=image,
        suspended=suspended,
        replicas=0 if suspended else 1,
        storage=Storage(
            storage_class_name=storage_class,
            retain_policy="retain" if retain_volume else "delete",
        ),
        bundle_secret_name=bundle_secret_name(tenant_id),
        platform_models_url=platform_models_url,
        control_plane_url=control_plane_url,
    )
    body = operator_tenant_resource(
        tenant_name(tenant_id), namespace, spec, labels=labels(installation, tenant_id, slug)
    )
    # Always written, defaults or not: a suspension sets them with a plain patch, and the
    # (forced) apply of a resume must take them back rather than leave them to that patch.
    body["spec"]["suspended"] = suspended
    body["spec"]["replicas"] = spec.replicas
    return body
