"""The tenantry chart: what it renders, that Kubernetes would accept it, and what it refuses."""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm
import pytest
from prometheus_client.metrics import MetricWrapperBase

from control_plane.cli.main import build_parser
from control_plane.reconciler import metrics
from control_plane.settings import load_settings
from control_plane.tenants.states import TenantState
from operators.config import load_config as load_operator_config
from operators.tenant.manifests import GATEWAY_PORT
from tests.integration.charts.rendering import (
    CHARTS,
    Obj,
    Rendered,
    assert_hardened,
    lint_findings,
    pod_specs,
    render,
    validate,
)

CHART_DIR = CHARTS / "tenantry"
CONTROL_PLANE = "tenantry-control-plane"
OPERATOR = "tenantry-operator"

EVERYTHING: dict[str, Any] = {
    "tenants": {"namespace": "tenants", "createNamespace": True},
    "database": {"existingSecret": "pg", "urlKey": "app-url", "migrationUrlKey": "owner-url"},
    "redis": {"existingSecret": "redis", "urlKey": "url"},
    "kek": {"existingSecret": "kek-ring", "key": "ring"},
    "jwt": {"existingSecret": "jwt-ring", "key": "keys"},
    "tokenHashKey": {"existingSecret": "digest", "key": "key"},
    "platformModelsUrl": "http://fleet-vllm-fleet-qwen.models.svc:8000/v1",
    "publicUrl": "https://tenantry.example.com",
    "telegramPlatformBot": {"existingSecret": "telegram", "username": "acme_assistant_bot"},
    "controlPlane": {
        "replicas": 3,
        "image": {"tag": "1.2.3"},
        "podDisruptionBudget": {"minAvailable": 2},
        "extraEnv": [{"name": "TENANTRY_TELEGRAM_API_BASE", "value": "http://telegram:8081"}],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "control-plane"}},
            }
        ],
    },
    "operator": {"peering": {"enabled": True}},
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "hosts": ["tenantry.example.com"],
        "tls": [{"secretName": "tenantry-tls", "hosts": ["tenantry.example.com"]}],
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "prometheusRule": {"enabled": True},
}
HTTP_ROUTE: dict[str, Any] = {"httpRoute": {"enabled": True}, "serviceMonitor": {"enabled": True}}
INLINE_DATABASE: dict[str, Any] = {
    "database": {"url": "postgresql://tenantry:pw@db/tenantry", "existingSecret": ""},
    "operator": {"enabled": False},
    "networkPolicy": {"enabled": False},
    "controlPlane": {"podDisruptionBudget": {"enabled": False}},
}
VALUE_SETS = {
    "defaults": {},
    "everything": EVERYTHING,
    "http-route": HTTP_ROUTE,
    "inline-database": INLINE_DATABASE,
}


@pytest.fixture(params=list(VALUE_SETS), ids=list(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, tenantry_chart: helm.Chart) -> Rendered:
    return render(tenantry_chart, VALUE_SETS[request.param])


def _env(deployment: Obj) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _container(deployment: Obj) -> Obj:
    containers: list[Obj] = deployment["spec"]["template"]["spec"]["containers"]
    [container] = containers
    return container


def _secret_ref(name: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": name, "key": key}}


# -- renders, lints and validates -----------------------------------------------------------


def test_default_values_lint_cleanly_with_strict_helm_lint() -> None:
    assert lint_findings(CHART_DIR) == []


def test_every_value_set_lints_cleanly() -> None:
    for name, values in VALUE_SETS.items():
        assert lint_findings(CHART_DIR, values) == [], name


def test_defaults_render_the_control_plane_and_the_operator(tenantry_chart: helm.Chart) -> None:
    assert render(tenantry_chart).names() == {
        ("Deployment", CONTROL_PLANE),
        ("Service", CONTROL_PLANE),
        ("ServiceAccount", CONTROL_PLANE),
        ("Role", CONTROL_PLANE),
        ("RoleBinding", CONTROL_PLANE),
        ("PodDisruptionBudget", CONTROL_PLANE),
        ("NetworkPolicy", CONTROL_PLANE),
        ("Deployment", OPERATOR),
        ("ServiceAccount", OPERATOR),
        ("ClusterRole", OPERATOR),
        ("ClusterRoleBinding", OPERATOR),
        ("NetworkPolicy", OPERATOR),
    }


def test_every_rendered_object_is_valid_kubernetes(rendered: Rendered) -> None:
    assert rendered.objects
    for obj in rendered.objects:
        validate(obj)


def test_the_validator_rejects_an_unknown_field(tenantry_chart: helm.Chart) -> None:
    deployment = render(tenantry_chart).one("Deployment", CONTROL_PLANE)
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(AssertionError, match="readinessProbes"):
        validate(deployment)


def test_every_pod_template_is_hardened(rendered: Rendered) -> None:
    pods = list(pod_specs(rendered.objects))
    assert pods
    for owner, pod in pods:
        assert_hardened(owner, pod)


def test_namespaced_objects_land_in_the_release_or_tenants_namespace(
    tenantry_chart: helm.Chart,
) -> None:
    everything = render(tenantry_chart, EVERYTHING, namespace="platform")
    for obj in everything.objects:
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in ("Role", "RoleBinding"):
            assert namespace == "tenants", obj["kind"]
        elif obj["kind"] in ("ClusterRole", "ClusterRoleBinding", "Namespace"):
            assert namespace is None, obj["kind"]
        else:
            assert namespace == "platform", obj["kind"]


# -- the control plane --------------------------------------------------------------------


def test_control_plane_runs_tenantry_up_on_the_kubernetes_runtime(
    tenantry_chart: helm.Chart,
) -> None:
    deployment = render(tenantry_chart).one("Deployment", CONTROL_PLANE)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "tenantry/control-plane:0.1.0"  # the chart's appVersion
    assert container["args"][:3] == ["up", "--host", "0.0.0.0"]
    env = _env(deployment)
    assert env["TENANTRY_RUNTIME"] == "kubernetes"
    assert env["TENANTRY_INSTALLATION"] == "tenantry"
    assert env["TENANTRY_KUBERNETES_NAMESPACE"] == "tenantry"
    assert env["TENANTRY_KUBERNETES_NAMESPACE_PER_TENANT"] == "false"
    assert env["TENANTRY_GATEWAY_IMAGE"] == "tenantry/tenant-gateway:0.1.0"
    assert env["TENANTRY_INTERNAL_URL"] == "http://tenantry-control-plane.tenantry.svc:8080"
    assert env["TENANTRY_DATABASE_URL"] == _secret_ref("tenantry-secrets", "database-url")
    assert env["TENANTRY_KEK"] == _secret_ref("tenantry-secrets", "kek")
    assert env["TENANTRY_JWT_KEYS"] == _secret_ref("tenantry-secrets", "jwt-keys")
    assert env["TENANTRY_TOKEN_HASH_KEY"] == _secret_ref("tenantry-secrets", "token-hash-key")
    assert "TENANTRY_REDIS_URL" not in env
    assert "TENANTRY_PUBLIC_URL" not in env
    probes = {k: container[k]["httpGet"]["path"] for k in container if k.endswith("Probe")}
    assert probes == {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }


def test_control_plane_settings_load_from_what_the_chart_sets(tenantry_chart: helm.Chart) -> None:
    """The pod's environment and flags, secrets filled in, are settings the control plane takes."""
    deployment = render(tenantry_chart, EVERYTHING).one("Deployment", CONTROL_PLANE)
    secrets = {
        ("pg", "app-url"): "postgresql://tenantry:pw@db/tenantry",
        ("pg", "owner-url"): "postgresql://owner:pw@db/tenantry",
        ("redis", "url"): "redis://redis:6379/0",
        ("telegram", "telegram-platform-bot-token"): "123456789:" + "A" * 35,
    }
    env: dict[str, str] = {}
    for name, value in _env(deployment).items():
        if isinstance(value, str):
            env[name] = value
        elif "secretKeyRef" in value:
            ref = value["secretKeyRef"]
            env[name] = secrets.get((ref["name"], ref["key"]), "opaque-secret")
    args = _container(deployment)["args"]
    flags = dict(zip(args[1::2], args[2::2], strict=True))
    settings = load_settings(
        env, data_dir=flags["--data-dir"], host=flags["--host"], port=int(flags["--port"])
    )
    assert settings.runtime == "kubernetes"
    assert settings.kubernetes.namespace == "tenants"
    assert settings.kubernetes.installation == "tenantry"
    assert settings.kubernetes.gateway_image == "tenantry/tenant-gateway:0.1.0"
    assert settings.kubernetes.retain_volumes is True
    assert settings.database_url == "postgresql+psycopg://tenantry:pw@db/tenantry"
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.internal_url == "http://tenantry-control-plane.tenantry.svc:8080"
    assert settings.platform_models_url == EVERYTHING["platformModelsUrl"]
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    assert settings.log_format == "json"


def test_a_namespace_per_tenant_widens_the_control_planes_rights_to_the_cluster(
    tenantry_chart: helm.Chart,
) -> None:
    values = {
        "tenants": {"namespace": "tenant", "namespacePerTenant": True, "createNamespace": True}
    }
    rendered = render(tenantry_chart, values)
    assert not rendered.of_kind("Role")
    assert not rendered.of_kind("Namespace"), "tenant namespaces are made per tenant"
    role = rendered.one("ClusterRole", CONTROL_PLANE)
    namespaces = {
        "apiGroups": [""],
        "resources": ["namespaces"],
        "verbs": ["get", "create", "delete"],
    }
    assert namespaces in role["rules"]
    binding = rendered.one("ClusterRoleBinding", CONTROL_PLANE)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": CONTROL_PLANE,
    }
    env = _env(rendered.one("Deployment", CONTROL_PLANE))
    assert env["TENANTRY_KUBERNETES_NAMESPACE_PER_TENANT"] == "true"
    for obj in rendered.objects:
        validate(obj)


def test_control_plane_reads_every_secret_from_the_named_secrets(
    tenantry_chart: helm.Chart,
) -> None:
    rendered = render(tenantry_chart, EVERYTHING)
    env = _env(rendered.one("Deployment", CONTROL_PLANE))
    assert env["TENANTRY_DATABASE_URL"] == _secret_ref("pg", "app-url")
    assert env["TENANTRY_DATABASE_MIGRATION_URL"] == _secret_ref("pg", "owner-url")
    assert env["TENANTRY_REDIS_URL"] == _secret_ref("redis", "url")
    assert env["TENANTRY_KEK"] == _secret_ref("kek-ring", "ring")
    assert env["TENANTRY_JWT_KEYS"] == _secret_ref("jwt-ring", "keys")
    assert env["TENANTRY_TOKEN_HASH_KEY"] == _secret_ref("digest", "key")
    assert env["TENANTRY_PLATFORM_MODELS_URL"] == EVERYTHING["platformModelsUrl"]
    assert env["TENANTRY_PUBLIC_URL"] == "https://tenantry.example.com"
    assert env["TENANTRY_KUBERNETES_NAMESPACE"] == "tenants"
    assert env["TENANTRY_TELEGRAM_API_BASE"] == "http://telegram:8081"
    assert env["TENANTRY_TELEGRAM_PLATFORM_BOT_TOKEN"] == _secret_ref(
        "telegram", "telegram-platform-bot-token"
    )
    assert env["TENANTRY_TELEGRAM_PLATFORM_BOT_USERNAME"] == "acme_assistant_bot"
    assert not rendered.of_kind("Secret"), "the chart must not copy existing secrets"


def test_the_platform_bot_is_off_by_default_and_polls_only_with_one_replica(
    tenantry_chart: helm.Chart,
) -> None:
    env = _env(render(tenantry_chart, {}).one("Deployment", CONTROL_PLANE))
    assert "TENANTRY_TELEGRAM_PLATFORM_BOT_TOKEN" not in env
    polling = {"telegramPlatformBot": {"existingSecret": "telegram"}}
    env = _env(render(tenantry_chart, polling).one("Deployment", CONTROL_PLANE))
    assert env["TENANTRY_TELEGRAM_PLATFORM_BOT_TOKEN"] == _secret_ref(
        "telegram", "telegram-platform-bot-token"
    )
    with pytest.raises(Exception, match="needs publicUrl"):
        render(tenantry_chart, {**polling, "controlPlane": {"replicas": 2}})


def test_an_inline_database_url_goes_into_a_rendered_secret(tenantry_chart: helm.Chart) -> None:
    rendered = render(tenantry_chart, INLINE_DATABASE)
    secret = rendered.one("Secret", "tenantry-database")
    assert secret["stringData"] == {"database-url": "postgresql://tenantry:pw@db/tenantry"}
    env = _env(rendered.one("Deployment", CONTROL_PLANE))
    assert env["TENANTRY_DATABASE_URL"] == _secret_ref("tenantry-database", "database-url")
    assert "WARNING" in rendered.notes


def test_control_plane_may_manage_tenants_and_secrets_only_in_the_tenants_namespace(
    tenantry_chart: helm.Chart,
) -> None:
    rendered = render(tenantry_chart, EVERYTHING)
    role = rendered.one("Role", CONTROL_PLANE)
    grants = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    # What the runtime calls, no more: apply (patch, else create), read, list and watch
    # Tenants (status included), delete; Secrets are written and deleted, never read back.
    assert grants == {
        ("tenantry.dev", "tenants"): {"get", "list", "watch", "create", "patch", "delete"},
        ("", "secrets"): {"create", "patch", "delete"},
    }
    binding = rendered.one("RoleBinding", CONTROL_PLANE)
    assert binding["roleRef"]["name"] == CONTROL_PLANE
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": CONTROL_PLANE, "namespace": "tenantry"}
    ]
    assert not [r for r in rendered.of_kind("ClusterRole") if "control-plane" in str(r)]


def test_pod_disruption_budget_follows_the_values(tenantry_chart: helm.Chart) -> None:
    default = render(tenantry_chart).one("PodDisruptionBudget")["spec"]
    assert default["maxUnavailable"] == 1
    assert "minAvailable" not in default
    pinned = render(tenantry_chart, EVERYTHING).one("PodDisruptionBudget")["spec"]
    assert pinned["minAvailable"] == 2
    assert "maxUnavailable" not in pinned


# -- the operator ---------------------------------------------------------------------------


def test_operator_runs_alone_with_its_own_service_account(tenantry_chart: helm.Chart) -> None:
    deployment = render(tenantry_chart).one("Deployment", OPERATOR)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == OPERATOR
    container = _container(deployment)
    assert container["image"] == "tenantry/operator:0.1.0"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8081, "protocol": "TCP"} in container["ports"]


def test_operator_command_and_settings_are_what_tenantry_operator_takes(
    tenantry_chart: helm.Chart,
) -> None:
    for peering in (False, True):
        values = {"operator": {"peering": {"enabled": peering}, "resyncInterval": 30}}
        container = _container(render(tenantry_chart, values).one("Deployment", OPERATOR))
        args = build_parser().parse_args(container["args"])
        assert args.command == "operator"
        assert args.namespace is None, "cluster-wide, as the ClusterRole grants"
        assert args.standalone is not peering
        assert args.liveness == "http://0.0.0.0:8081/healthz"
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        config = load_operator_config(env)
        assert config.resync_interval == 30
        assert config.log_level == "info"


def test_operator_cluster_role_uses_no_wildcards(rendered: Rendered) -> None:
    for role in rendered.of_kind("ClusterRole") + rendered.of_kind("Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), f"{role['metadata']['name']}: {rule}"
            assert "nonResourceURLs" not in rule
            assert "resourceNames" not in rule or "*" not in rule["resourceNames"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule


def test_operator_cluster_role_grants_exactly_what_it_reconciles(
    tenantry_chart: helm.Chart,
) -> None:
    role = render(tenantry_chart).one("ClusterRole", OPERATOR)
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    manage = {"get", "list", "watch", "create", "update", "patch", "delete"}
    assert grants == {
        ("tenantry.dev", "tenants"): {"get", "list", "watch", "patch", "update"},
        ("tenantry.dev", "tenants/status"): {"get", "patch", "update"},
        ("apps", "deployments"): manage,
        ("", "services"): manage,
        ("", "serviceaccounts"): manage,
        ("", "persistentvolumeclaims"): manage,
        ("networking.k8s.io", "networkpolicies"): manage,
        ("", "secrets"): {"get", "list", "watch"},
        ("", "events"): {"create"},
        ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    }


def test_kopf_peering_rights_come_only_with_peering(tenantry_chart: helm.Chart) -> None:
    def peering_rules(values: dict[str, Any]) -> list[Obj]:
        role = render(tenantry_chart, values).one("ClusterRole", OPERATOR)
        return [r for r in role["rules"] if "kopf.dev" in r["apiGroups"]]

    assert peering_rules({}) == []
    [rule] = peering_rules({"operator": {"peering": {"enabled": True}}})
    assert set(rule["resources"]) == {"clusterkopfpeerings", "kopfpeerings"}


def test_disabling_the_operator_removes_its_objects(tenantry_chart: helm.Chart) -> None:
    rendered = render(tenantry_chart, {"operator": {"enabled": False}})
    assert not [name for kind, name in rendered.names() if name == OPERATOR]
    assert "operator is disabled" in rendered.notes


# -- network policies -------------------------------------------------------------------------


def test_operator_accepts_no_traffic_and_reaches_only_dns_and_the_api(
    tenantry_chart: helm.Chart,
) -> None:
    policy = render(tenantry_chart).one("NetworkPolicy", OPERATOR)["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == []
    ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {(53, "UDP"), (53, "TCP"), (443, "TCP"), (6443, "TCP")}


def test_control_plane_accepts_gateways_from_the_tenants_namespace(
    tenantry_chart: helm.Chart,
) -> None:
    policy = render(tenantry_chart, EVERYTHING).one("NetworkPolicy", CONTROL_PLANE)["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "control-plane"
    [rule] = policy["ingress"]
    gateways = {"app.kubernetes.io/name": "tenant-gateway", "app.kubernetes.io/part-of": "tenantry"}
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tenants"}},
        "podSelector": {"matchLabels": gateways},
    } in rule["from"]
    per_tenant = render(tenantry_chart, {"tenants": {"namespacePerTenant": True}})
    [rule] = per_tenant.one("NetworkPolicy", CONTROL_PLANE)["spec"]["ingress"]
    ours = {"matchLabels": {"tenantry.dev/installation": "tenantry"}}
    assert {"namespaceSelector": ours, "podSelector": {"matchLabels": gateways}} in rule["from"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert policy["policyTypes"] == ["Ingress", "Egress"]


def test_control_plane_reaches_the_tenant_gateways_on_their_port_only(
    tenantry_chart: helm.Chart,
) -> None:
    """Channel messages and relayed webhooks go from the control plane to the gateways."""
    gateways = {"app.kubernetes.io/name": "tenant-gateway", "app.kubernetes.io/part-of": "tenantry"}
    for values, namespaces in (
        (EVERYTHING, {"kubernetes.io/metadata.name": "tenants"}),
        ({"tenants": {"namespacePerTenant": True}}, {"tenantry.dev/installation": "tenantry"}),
    ):
        policy = render(tenantry_chart, values).one("NetworkPolicy", CONTROL_PLANE)["spec"]
        peer = {
            "namespaceSelector": {"matchLabels": namespaces},
            "podSelector": {"matchLabels": gateways},
        }
        [rule] = [r for r in policy["egress"] if peer in r.get("to", [])]
        assert rule == {"to": [peer], "ports": [{"port": GATEWAY_PORT, "protocol": "TCP"}]}


def test_network_policies_can_be_turned_off(tenantry_chart: helm.Chart) -> None:
    assert not render(tenantry_chart, {"networkPolicy": {"enabled": False}}).of_kind(
        "NetworkPolicy"
    )


# -- exposure toggles ------------------------------------------------------------------------


def test_ingress_exposes_the_control_plane_service(tenantry_chart: helm.Chart) -> None:
    rendered = render(tenantry_chart, EVERYTHING)
    ingress = rendered.one("Ingress", CONTROL_PLANE)["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"secretName": "tenantry-tls", "hosts": ["tenantry.example.com"]}]
    [rule] = ingress["rules"]
    assert rule["host"] == "tenantry.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": CONTROL_PLANE, "port": {"name": "http"}}
    assert not rendered.of_kind("HTTPRoute")


def test_http_route_replaces_the_ingress(tenantry_chart: helm.Chart) -> None:
    rendered = render(tenantry_chart, HTTP_ROUTE)
    route = rendered.one("HTTPRoute", CONTROL_PLANE)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "gateway", "namespace": "gateway-system"}]
    [rule] = route["spec"]["rules"]
    assert rule["backendRefs"] == [{"name": CONTROL_PLANE, "port": 8080}]
    assert not rendered.of_kind("Ingress")


def test_defaults_publish_nothing_outside_the_cluster(tenantry_chart: helm.Chart) -> None:
    rendered = render(tenantry_chart)
    assert not rendered.of_kind("Ingress")
    assert not rendered.of_kind("HTTPRoute")
    assert "port-forward svc/tenantry-control-plane" in rendered.notes


# -- monitoring -------------------------------------------------------------------------------


def _exposed_metric_names() -> set[str]:
    """Names the control plane's /metrics shows for the reconciler's collectors."""
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    names: set[str] = set()
    for collector in vars(metrics).values():
        if isinstance(collector, MetricWrapperBase):
            for family in collector.describe():
                names.update(family.name + s for s in suffixes[family.type])
    return names


def test_monitoring_objects_come_only_when_asked_for(tenantry_chart: helm.Chart) -> None:
    default = render(tenantry_chart)
    assert not default.of_kind("ServiceMonitor")
    assert not default.of_kind("PrometheusRule")
    only_monitor = render(tenantry_chart, {"serviceMonitor": {"enabled": True}})
    assert only_monitor.of_kind("ServiceMonitor")
    assert not only_monitor.of_kind("PrometheusRule")


def test_service_monitor_scrapes_the_control_plane_metrics(tenantry_chart: helm.Chart) -> None:
    rendered = render(tenantry_chart, EVERYTHING)
    monitor = rendered.one("ServiceMonitor", CONTROL_PLANE)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    service = rendered.one("Service", CONTROL_PLANE)
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["jobLabel"] in service["metadata"]["labels"]


def test_alerts_query_metrics_the_control_plane_exports(tenantry_chart: helm.Chart) -> None:
    rendered = render(tenantry_chart, EVERYTHING)
    rule = rendered.one("PrometheusRule", CONTROL_PLANE)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == {
        "TenantryControlPlaneDown",
        "TenantryTenantsFailing",
        "TenantryReconcileErrors",
        "TenantryGatewayCrashLooping",
    }
    exported = _exposed_metric_names()
    for name, alert in alerts.items():
        used = set(re.findall(r"\btenantry_[a-z_]+", alert["expr"]))
        assert used <= exported, f"{name} queries {used - exported}, not exported"
        assert alert["labels"]["severity"] in {"critical", "warning"}
        assert alert["annotations"]["summary"]
    assert 'state="failed"' in alerts["TenantryTenantsFailing"]["expr"]
    assert TenantState.FAILED.value == "failed"
    assert 'result="failed"' in alerts["TenantryReconcileErrors"]["expr"]


def test_control_plane_down_alert_selects_the_job_the_service_monitor_names(
    tenantry_chart: helm.Chart,
) -> None:
    rendered = render(tenantry_chart, EVERYTHING, release="acme", namespace="platform")
    monitor = rendered.one("ServiceMonitor")
    service = rendered.one("Service")
    job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    rule = rendered.one("PrometheusRule")
    [down] = [r for g in rule["spec"]["groups"] for r in g["rules"] if r["alert"].endswith("Down")]
    assert down["expr"] == f'absent(up{{job="{job}", namespace="platform"}} == 1)'


def test_alerts_can_be_switched_off_one_by_one(tenantry_chart: helm.Chart) -> None:
    values = {"prometheusRule": {"enabled": True, "gatewayCrashLooping": {"enabled": False}}}
    rule = render(tenantry_chart, values).one("PrometheusRule")
    alerts = {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]}
    assert "TenantryGatewayCrashLooping" not in alerts
    assert "TenantryControlPlaneDown" in alerts


# -- values the schema refuses ---------------------------------------------------------------

REFUSED = {
    "missing database secret": (
        {"database": {"existingSecret": ""}},
        "/database/existingSecret",
    ),
    "missing KEK secret": ({"kek": {"existingSecret": ""}}, "/kek/existingSecret"),
    "missing JWT secret": ({"jwt": {"existingSecret": ""}}, "/jwt/existingSecret"),
    "image tag given as a number": (
        {"controlPlane": {"image": {"tag": 1.2}}},
        "/controlPlane/image/tag",
    ),
    "operator image tag given as a number": (
        {"operator": {"image": {"tag": 2}}},
        "/operator/image/tag",
    ),
    "no replicas": ({"controlPlane": {"replicas": 0}}, "/controlPlane/replicas"),
    "replicas as text": ({"controlPlane": {"replicas": "two"}}, "/controlPlane/replicas"),
    "ingress and HTTPRoute together": (
        {"ingress": {"enabled": True}, "httpRoute": {"enabled": True}},
        "/httpRoute/enabled",
    ),
    "writable root filesystem": (
        {"securityContext": {"readOnlyRootFilesystem": False}},
        "/securityContext/readOnlyRootFilesystem",
    ),
    "pods as root": ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext"),
    "database URL of another engine": (
        {"database": {"url": "mysql://db/tenantry"}},
        "/database/url",
    ),
    "unknown log level": ({"controlPlane": {"logLevel": "loud"}}, "/controlPlane/logLevel"),
    "misspelt top-level key": ({"ingres": {"enabled": True}}, "'ingres'"),
}


@pytest.mark.parametrize(("values", "field"), list(REFUSED.values()), ids=list(REFUSED))
def test_schema_refuses_bad_values_naming_the_field(
    tenantry_chart: helm.Chart, values: dict[str, Any], field: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as refused:
        tenantry_chart.render(values, name="tenantry", namespace="tenantry")
    assert field in str(refused.value)
    assert lint_findings(CHART_DIR, values), "helm lint must report the same values"


def test_schema_accepts_an_inline_database_url_instead_of_a_secret(
    tenantry_chart: helm.Chart,
) -> None:
    tenantry_chart.validate_schema(tenantry_chart.merge_values(INLINE_DATABASE))
