"""The vllm-fleet chart: one model server per platform model, valid and hardened."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

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

CHART_DIR = CHARTS / "vllm-fleet"
RELEASE = "fleet"

TWO_MODELS: dict[str, Any] = {
    "huggingface": {"existingSecret": "hf", "key": "token"},
    "defaults": {"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L4"}},
    "models": [
        {
            "name": "qwen",
            "model": "Qwen/Qwen2.5-7B-Instruct",
            "servedModelName": "qwen2.5-7b-instruct",
            "maxModelLen": 32768,
            "gpuMemoryUtilization": 0.85,
            "extraArgs": ["--enable-prefix-caching"],
        },
        {
            "name": "llama-70b",
            "model": "meta-llama/Llama-3.3-70B-Instruct",
            "gpus": 4,
            "replicas": 2,
            "cache": {"type": "emptyDir", "size": "200Gi"},
        },
    ],
}
EVERYTHING: dict[str, Any] = {
    **TWO_MODELS,
    "keda": {"enabled": True, "threshold": 3, "maxReplicas": 6},
    "serviceMonitor": {"enabled": True},
}
VALUE_SETS = {"defaults": {}, "two-models": TWO_MODELS, "everything": EVERYTHING}


def _render(chart: helm.Chart, values: dict[str, Any] | None = None) -> Rendered:
    return render(chart, values, release=RELEASE, namespace="models")


@pytest.fixture(params=list(VALUE_SETS), ids=list(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, fleet_chart: helm.Chart) -> Rendered:
    return _render(fleet_chart, VALUE_SETS[request.param])


def _container(deployment: Obj) -> Obj:
    containers: list[Obj] = deployment["spec"]["template"]["spec"]["containers"]
    [container] = containers
    return container


def _flags(container: Obj) -> dict[str, str]:
    args: list[str] = container["args"]
    return {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}


def test_default_values_lint_cleanly_with_strict_helm_lint() -> None:
    assert lint_findings(CHART_DIR) == []


def test_every_value_set_lints_cleanly() -> None:
    for name, values in VALUE_SETS.items():
        assert lint_findings(CHART_DIR, values) == [], name


def test_every_rendered_object_is_valid_kubernetes(rendered: Rendered) -> None:
    assert rendered.objects
    for obj in rendered.objects:
        validate(obj)


def test_every_pod_template_is_hardened(rendered: Rendered) -> None:
    pods = list(pod_specs(rendered.objects))
    assert pods
    for owner, pod in pods:
        assert_hardened(owner, pod)
        assert pod["automountServiceAccountToken"] is False, owner


def test_defaults_serve_one_model(fleet_chart: helm.Chart) -> None:
    name = "fleet-vllm-fleet-qwen2-5-7b-instruct"
    assert _render(fleet_chart).names() == {
        ("Deployment", name),
        ("Service", name),
        ("PersistentVolumeClaim", f"{name}-cache"),
    }


def test_each_model_gets_a_deployment_and_a_service(fleet_chart: helm.Chart) -> None:
    rendered = _render(fleet_chart, TWO_MODELS)
    for model in ("qwen", "llama-70b"):
        deployment = rendered.one("Deployment", f"fleet-vllm-fleet-{model}")
        service = rendered.one("Service", f"fleet-vllm-fleet-{model}")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
        assert service["spec"]["ports"] == [
            {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
        ]
    selectors = [s["spec"]["selector"] for s in rendered.of_kind("Service")]
    assert selectors[0] != selectors[1], "a Service must reach only its own model"


def test_model_server_arguments_come_from_the_model_entry(fleet_chart: helm.Chart) -> None:
    rendered = _render(fleet_chart, TWO_MODELS)
    qwen = _container(rendered.one("Deployment", "fleet-vllm-fleet-qwen"))
    assert qwen["image"] == "vllm/vllm-openai:v0.11.0"
    assert _flags(qwen) == {
        "--model": "Qwen/Qwen2.5-7B-Instruct",
        "--served-model-name": "qwen2.5-7b-instruct",
        "--max-model-len": "32768",
        "--gpu-memory-utilization": "0.85",
        "--host": "0.0.0.0",
        "--port": "8000",
    }
    assert qwen["args"][-1] == "--enable-prefix-caching"
    llama = _container(rendered.one("Deployment", "fleet-vllm-fleet-llama-70b"))
    flags = _flags(llama)
    assert flags["--served-model-name"] == "meta-llama/Llama-3.3-70B-Instruct"
    assert flags["--max-model-len"] == "8192"  # from defaults
    assert flags["--tensor-parallel-size"] == "4"
    assert "--tensor-parallel-size" not in _flags(qwen)


def test_model_servers_request_gpus_and_land_on_gpu_nodes(fleet_chart: helm.Chart) -> None:
    rendered = _render(fleet_chart, TWO_MODELS)
    deployment = rendered.one("Deployment", "fleet-vllm-fleet-llama-70b")
    resources = _container(deployment)["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == "4"
    assert resources["limits"]["nvidia.com/gpu"] == "4"
    assert resources["requests"]["memory"] == "32Gi"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
        pod["tolerations"]
    )
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


def test_probes_check_health_on_port_8000(rendered: Rendered) -> None:
    for deployment in rendered.of_kind("Deployment"):
        container = _container(deployment)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/health", "port": 8000}, probe
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_shared_memory_and_the_model_cache_are_volumes(fleet_chart: helm.Chart) -> None:
    rendered = _render(fleet_chart, TWO_MODELS)
    for model, cache in (
        ("qwen", {"persistentVolumeClaim": {"claimName": "fleet-vllm-fleet-qwen-cache"}}),
        ("llama-70b", {"emptyDir": {"sizeLimit": "200Gi"}}),
    ):
        deployment = rendered.one("Deployment", f"fleet-vllm-fleet-{model}")
        volumes = {v.pop("name"): v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["dshm"] == {"emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}
        assert volumes["model-cache"] == cache
        mounts = {m["name"]: m["mountPath"] for m in _container(deployment)["volumeMounts"]}
        assert mounts == {"model-cache": "/models", "dshm": "/dev/shm", "tmp": "/tmp"}
        env = {e["name"]: e for e in _container(deployment)["env"]}
        assert env["HF_HOME"]["value"].startswith("/models/")
        assert env["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hf", "key": "token"}}
    [claim] = rendered.of_kind("PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "fleet-vllm-fleet-qwen-cache"
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"


def test_keda_scales_each_model_on_waiting_requests(fleet_chart: helm.Chart) -> None:
    rendered = _render(fleet_chart, EVERYTHING)
    scaled = {o["metadata"]["name"]: o for o in rendered.of_kind("ScaledObject")}
    assert set(scaled) == {"fleet-vllm-fleet-qwen", "fleet-vllm-fleet-llama-70b"}
    qwen = scaled["fleet-vllm-fleet-qwen"]
    assert qwen["apiVersion"] == "keda.sh/v1alpha1"
    assert qwen["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "fleet-vllm-fleet-qwen",
    }
    assert qwen["spec"]["maxReplicaCount"] == 6
    [trigger] = qwen["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["query"] == (
        'sum(vllm:num_requests_waiting{namespace="models", model_name="qwen2.5-7b-instruct"})'
    )
    assert trigger["metadata"]["threshold"] == "3"
    for deployment in rendered.of_kind("Deployment"):
        assert "replicas" not in deployment["spec"], "KEDA owns the replica count"


def test_keda_and_service_monitor_are_off_by_default(fleet_chart: helm.Chart) -> None:
    rendered = _render(fleet_chart, TWO_MODELS)
    assert not rendered.of_kind("ScaledObject")
    assert not rendered.of_kind("ServiceMonitor")


def test_service_monitor_scrapes_every_model_server(fleet_chart: helm.Chart) -> None:
    rendered = _render(fleet_chart, {**TWO_MODELS, "serviceMonitor": {"enabled": True}})
    monitor = rendered.one("ServiceMonitor")
    assert not rendered.of_kind("ScaledObject")
    selector = monitor["spec"]["selector"]["matchLabels"]
    for service in rendered.of_kind("Service"):
        assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["endpoints"][0]["port"] == "http"


def test_notes_list_each_model_url(fleet_chart: helm.Chart) -> None:
    notes = _render(fleet_chart, TWO_MODELS).notes
    assert "http://fleet-vllm-fleet-qwen.models.svc:8000/v1" in notes
    assert "http://fleet-vllm-fleet-llama-70b.models.svc:8000/v1" in notes


REFUSED = {
    "no models": ({"models": []}, "/models"),
    "model without an id": ({"models": [{"name": "a"}]}, "'model'"),
    "name that is no DNS label": (
        {"models": [{"name": "Qwen_7B", "model": "Qwen/Qwen2.5-7B"}]},
        "/models/0/name",
    ),
    "image tag given as a number": ({"image": {"tag": 0.11}}, "/image/tag"),
    "unpinned image": ({"image": {"tag": "latest"}}, "/image/tag"),
    "no GPUs": ({"models": [{"name": "a", "model": "m", "gpus": 0}]}, "/models/0/gpus"),
    "GPU memory share above 1": (
        {"defaults": {"gpuMemoryUtilization": 1.5}},
        "/defaults/gpuMemoryUtilization",
    ),
    "unknown cache type": (
        {"models": [{"name": "a", "model": "m", "cache": {"type": "hostPath"}}]},
        "/models/0/cache/type",
    ),
    "no replicas": ({"defaults": {"replicas": 0}}, "/defaults/replicas"),
}


@pytest.mark.parametrize(("values", "field"), list(REFUSED.values()), ids=list(REFUSED))
def test_schema_refuses_bad_values_naming_the_field(
    fleet_chart: helm.Chart, values: dict[str, Any], field: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as refused:
        fleet_chart.render(values, name=RELEASE, namespace="models")
    assert field in str(refused.value)


def test_two_models_with_one_name_are_refused(fleet_chart: helm.Chart) -> None:
    values = {"models": [{"name": "a", "model": "x/A"}, {"name": "a", "model": "y/B"}]}
    with pytest.raises(helm.HelmRenderError, match='the name "a" is used twice'):
        fleet_chart.render(values, name=RELEASE, namespace="models")
