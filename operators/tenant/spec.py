"""The ``Tenant`` custom resource as typed data: the operator's published contract.

The control plane builds the Tenant it server-side-applies with :func:`tenant_resource`
from a :class:`TenantSpec`; the operator reads every Tenant back through
:func:`parse_spec`. Both sides therefore agree on one shape, and the CRD's OpenAPI schema
(``operators/crds/tenants.tenantry.dev.yaml``) states the same rules for the API server.

This module imports only msgspec (and the operator's exception root), so the control plane
can import it without kopf or the ``kubernetes`` client.

Field names are snake_case in Python and camelCase on the wire (``tenantId``,
``bundleSecretName``...). Input is strict: unknown fields are rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import msgspec

from operators.errors import InvalidTenantSpec

GROUP: Final = "tenantry.dev"
VERSION: Final = "v1alpha1"
PLURAL: Final = "tenants"
KIND: Final = "Tenant"
SHORT_NAME: Final = "tnt"
API_VERSION: Final = f"{GROUP}/{VERSION}"
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# Patterns shared with the CRD's schema (tests check they agree).
DNS_LABEL: Final = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
LABEL_VALUE: Final = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
QUANTITY: Final = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
STORAGE_SIZE: Final = r"^[0-9]+(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
HTTP_URL: Final = r"^https?://[^\s/?#]+[^\s]*$"
DNS_SUBDOMAIN: Final = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"

TENANT_NAME_MAX = 57
"""Longest Tenant name: children are named after it, a Service name is a DNS-1035 label (63
characters) and the volume claim adds ``-data``."""
TENANT_NAME: Final = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"

DnsLabel = Annotated[str, msgspec.Meta(pattern=DNS_LABEL, max_length=63)]
LabelValue = Annotated[str, msgspec.Meta(pattern=LABEL_VALUE, max_length=63)]
Quantity = Annotated[str, msgspec.Meta(pattern=QUANTITY)]
StorageSize = Annotated[str, msgspec.Meta(pattern=STORAGE_SIZE)]
HttpUrl = Annotated[str, msgspec.Meta(pattern=HTTP_URL, max_length=2048)]
DnsSubdomain = Annotated[str, msgspec.Meta(pattern=DNS_SUBDOMAIN, max_length=253)]
Plan = Annotated[str, msgspec.Meta(min_length=1, max_length=63)]
Image = Annotated[str, msgspec.Meta(min_length=1, max_length=512, pattern=r"^\S+$")]

Phase = Literal["Pending", "Provisioning", "Running", "Suspended", "Failed"]
ConditionType = Literal["Ready", "Progressing", "Degraded"]
ConditionStatus = Literal["True", "False", "Unknown"]
RetainPolicy = Literal["retain", "delete"]
PullPolicy = Literal["Always", "IfNotPresent", "Never"]


class _Wire(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    rename="camel",
    omit_defaults=True,
    forbid_unknown_fields=True,
):
    """Base of the spec's shapes: immutable, camelCase, strict, defaults left out on output."""


# -- spec ----------------------------------------------------------------------------------


class ResourceList(_Wire, frozen=True):
    """CPU and memory as Kubernetes quantities (``250m``, ``512Mi``); unset means no value."""

    cpu: Quantity | None = None
    memory: Quantity | None = None


class Resources(_Wire, frozen=True):
    """The gateway container's requests and limits; what is unset comes from the plan."""

    requests: ResourceList = msgspec.field(default_factory=ResourceList)
    limits: ResourceList = msgspec.field(default_factory=ResourceList)


class Storage(_Wire, frozen=True):
    """The tenant's memory volume (a ReadWriteOnce PersistentVolumeClaim)."""

    size: StorageSize | None = None
    """Requested size (``1Gi``); unset means the plan's size."""
    storage_class_name: DnsSubdomain | None = None
    """Storage class; unset means the cluster's default class."""
    retain_policy: RetainPolicy = "retain"
    """``retain`` keeps the volume when the Tenant is deleted; ``delete`` removes it."""


class ModelRoute(_Wire, frozen=True):
    """A model endpoint the gateway calls besides the platform fleet (a BYOK provider).

    The operator opens the route's port to the public internet in the NetworkPolicy; the
    gateway learns the route itself from its sealed bundle."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=63)]
    base_url: HttpUrl


class LabelSelector(_Wire, frozen=True):
    """Kubernetes label selector (``matchLabels`` only); empty selects everything."""

    match_labels: dict[str, str] = {}


class Peer(_Wire, frozen=True):
    """Who a NetworkPolicy rule admits: pods by labels, in namespaces by labels.

    No ``namespaceSelector`` means the Tenant's own namespace; an empty one means every
    namespace."""

    namespace_selector: LabelSelector | None = None
    pod_selector: LabelSelector | None = None

    def __post_init__(self) -> None:
        if self.namespace_selector is None and self.pod_selector is None:
            raise ValueError("a network peer needs a namespaceSelector or a podSelector")


def _namespace_named(name: str) -> LabelSelector:
    return LabelSelector(match_labels={"kubernetes.io/metadata.name": name})


def _tenantry_pods(component: str) -> Peer:
    return Peer(
        namespace_selector=LabelSelector(),
        pod_selector=LabelSelector(
            match_labels={
                "app.kubernetes.io/part-of": "tenantry",
                "app.kubernetes.io/component": component,
            }
        ),
    )


class Network(_Wire, frozen=True):
    """Who may reach the gateway and whom it may reach; defaults match the Helm charts."""

    ingress: Peer = msgspec.field(
        default_factory=lambda: Peer(namespace_selector=_namespace_named("ingress-nginx"))
    )
    """The platform's ingress controller (default: the ``ingress-nginx`` namespace)."""
    control_plane: Peer = msgspec.field(default_factory=lambda: _tenantry_pods("control-plane"))
    """The control plane's pods (default: the ``tenantry`` chart's labels, any namespace)."""
    model_fleet: Peer = msgspec.field(default_factory=lambda: _tenantry_pods("model-server"))
    """The vLLM fleet's pods (default: the ``vllm-fleet`` chart's labels, any namespace)."""
    dns_namespace: DnsLabel = "kube-system"
    """Namespace of the cluster DNS, reached on port 53."""


class TenantSpec(_Wire, frozen=True):
    """What one tenant's gateway should be: the ``spec`` of a Tenant resource."""

    tenant_id: LabelValue
    """The control plane's tenant id; labels every child (``tenantry.dev/tenant-id``)."""
    slug: DnsLabel
    """The tenant's slug, a DNS label."""
    image: Image
    """The tenant-gateway image (``registry/tenantry/tenant-gateway:1.2.3``)."""
    bundle_secret_name: DnsSubdomain
    """Secret holding ``bundle.json`` and ``identity-token``; written by the control plane
    and mounted read-only at ``/etc/tenantry/bundle``."""
    plan: Plan = "free"
    """Billing plan; picks default resources and volume size (unknown plans get ``free``'s)."""
    image_pull_policy: PullPolicy = "IfNotPresent"
    resources: Resources | None = None
    """Container requests and limits; unset fields come from the plan."""
    storage: Storage = msgspec.field(default_factory=Storage)
    suspended: bool = False
    """True stops the gateway (zero replicas); its volume and keys are kept."""
    replicas: Annotated[int, msgspec.Meta(ge=0, le=1)] = 1
    """1 runs the gateway, 0 stops it (hibernation); one gateway per tenant at most."""
    model_routes: list[ModelRoute] = []
    control_plane_url: HttpUrl | None = None
    """Where the gateway unseals its keys (informational: the bundle carries it too)."""
    platform_models_url: HttpUrl | None = None
    """The vLLM fleet's OpenAI-compatible base URL, given as TENANTRY_PLATFORM_MODELS_URL."""
    network: Network | None = None
    """NetworkPolicy peers; unset means :class:`Network`'s defaults."""

    @property
    def desired_replicas(self) -> int:
        """Pods the Deployment should run: none while suspended or scaled to zero."""
        return 0 if self.suspended or self.replicas == 0 else 1

    @property
    def effective_network(self) -> Network:
        return self.network if self.network is not None else Network()


# -- status --------------------------------------------------------------------------------


class _Status(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """Base of the status shapes: tolerant of fields other writers may add."""


class Condition(_Status, frozen=True):
    """One condition, in the shape Kubernetes uses everywhere (``metav1.Condition``)."""

    type: ConditionType
    status: ConditionStatus
    reason: str
    message: str = ""
    last_transition_time: str = ""
    """RFC 3339 time the status last changed (not when the reason or message did)."""


class TenantStatus(_Status, frozen=True):
    """What the operator reports about a Tenant (the ``status`` subresource)."""

    phase: Phase = "Pending"
    endpoint: str | None = None
    """``http://<name>.<namespace>.svc:80`` once the Service exists."""
    conditions: list[Condition] = []
    observed_generation: int | None = None
    """The Tenant ``metadata.generation`` whose spec the children were last built from."""
    message: str | None = None
    """A sentence for people: why the Tenant is in its phase."""

    def condition(self, type_: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


# -- parsing and building ------------------------------------------------------------------


class PlanDefaults(msgspec.Struct, frozen=True, kw_only=True):
    """What a plan gives a tenant when its spec does not say."""

    requests: ResourceList
    limits: ResourceList
    storage_size: str


PLAN_DEFAULTS: Final[Mapping[str, PlanDefaults]] = {
    "free": PlanDefaults(
        requests=ResourceList(cpu="50m", memory="128Mi"),
        limits=ResourceList(cpu="250m", memory="256Mi"),
        storage_size="1Gi",
    ),
    "starter": PlanDefaults(
        requests=ResourceList(cpu="100m", memory="256Mi"),
        limits=ResourceList(cpu="500m", memory="512Mi"),
        storage_size="2Gi",
    ),
    "pro": PlanDefaults(
        requests=ResourceList(cpu="250m", memory="512Mi"),
        limits=ResourceList(cpu="1", memory="1Gi"),
        storage_size="5Gi",
    ),
    "enterprise": PlanDefaults(
        requests=ResourceList(cpu="500m", memory="1Gi"),
        limits=ResourceList(cpu="2", memory="2Gi"),
        storage_size="20Gi",
    ),
}
FALLBACK_PLAN: Final = "free"


def plan_defaults(plan: str) -> PlanDefaults:
    return PLAN_DEFAULTS.get(plan, PLAN_DEFAULTS[FALLBACK_PLAN])


def _filled(given: ResourceList, default: ResourceList) -> ResourceList:
    return ResourceList(cpu=given.cpu or default.cpu, memory=given.memory or default.memory)


def with_plan_defaults(spec: TenantSpec) -> TenantSpec:
    """The spec with every resource and the volume size filled in from its plan."""
    defaults = plan_defaults(spec.plan)
    given = spec.resources or Resources()
    resources = Resources(
        requests=_filled(given.requests, defaults.requests),
        limits=_filled(given.limits, defaults.limits),
    )
    storage = msgspec.structs.replace(spec.storage, size=spec.storage.size or defaults.storage_size)
    return msgspec.structs.replace(spec, resources=resources, storage=storage)


def parse_spec(body: Mapping[str, Any]) -> TenantSpec:
    """Validate a Tenant's ``spec`` and fill in its plan's defaults.

    Raises :class:`~operators.errors.InvalidTenantSpec` naming the offending field.
    """
    try:
        spec = msgspec.convert(dict(body), TenantSpec)
    except msgspec.ValidationError as exc:
        raise InvalidTenantSpec(f"invalid Tenant spec: {exc}") from exc
    return with_plan_defaults(spec)


def parse_status(body: Mapping[str, Any] | None) -> TenantStatus:
    """The status as last written, or an empty one if there is none or it is unreadable
    (a status is a report, never input worth failing over)."""
    try:
        return msgspec.convert(dict(body or {}), TenantStatus)
    except msgspec.ValidationError:
        return TenantStatus()


def check_tenant_name(name: str) -> None:
    """Refuse Tenant names the children cannot be named after."""
    if len(name) > TENANT_NAME_MAX or not re.fullmatch(TENANT_NAME, name):
        raise InvalidTenantSpec(
            f"invalid Tenant name {name!r}: expected at most {TENANT_NAME_MAX} lowercase "
            "letters, digits and '-', starting with a letter (it names a Service)"
        )


def endpoint_for(name: str, namespace: str) -> str:
    """The gateway's in-cluster URL: its Service's DNS name, port 80."""
    return f"http://{name}.{namespace}.svc:80"


def tenant_resource(
    name: str,
    namespace: str,
    spec: TenantSpec,
    *,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The whole Tenant custom resource, ready to create or server-side-apply."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": msgspec.to_builtins(spec),
    }
