"""Starting the operator: settings and credentials checked before kopf starts, kopf logged in
with the ``kubernetes`` client's credentials, and the ``tenantry operator`` command."""

from __future__ import annotations

from pathlib import Path

import kopf
import pytest
from kubernetes import client as k8s

from control_plane.cli.main import main as tenantry
from operators.main import EXIT_CONFIG, connection_info, operator_settings, run


def test_a_bad_setting_stops_the_operator_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TENANTRY_OPERATOR_RESYNC_INTERVAL", "often")

    assert run(None) == EXIT_CONFIG
    assert "TENANTRY_OPERATOR_RESYNC_INTERVAL='often'" in capsys.readouterr().err


def test_no_credentials_stop_the_operator_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))

    assert tenantry(["operator", "--namespace", "tenants", "--standalone"]) == EXIT_CONFIG
    assert "in-cluster service account or a usable kubeconfig" in capsys.readouterr().err


def test_kopf_logs_in_with_the_clients_server_and_token() -> None:
    configuration = k8s.Configuration(host="https://kubernetes.default.svc:443")
    configuration.api_key = {"BearerToken": "sa-token"}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    configuration.ssl_ca_cert = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

    info = connection_info(configuration, kopf.OperatorSettings())

    assert info.server == "https://kubernetes.default.svc:443"
    assert (info.scheme, info.token) == ("Bearer", "sa-token")
    assert info.ca_path == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    assert info.insecure is False


def test_an_anonymous_client_logs_in_without_a_token() -> None:
    info = connection_info(k8s.Configuration(host="http://127.0.0.1:8001"), kopf.OperatorSettings())
    assert (info.server, info.scheme, info.token) == ("http://127.0.0.1:8001", None, None)


def test_kopf_keeps_its_marks_under_our_own_names() -> None:
    settings = operator_settings()
    assert settings.persistence.finalizer == "tenantry.dev/finalizer"
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)


def test_kopf_diffs_tenants_but_not_their_children() -> None:
    storage = operator_settings().persistence.diffbase_storage
    tenant = kopf.Body(
        {
            "apiVersion": "tenantry.dev/v1alpha1",
            "kind": "Tenant",
            "metadata": {"name": "tenant-acme", "namespace": "tenants"},
            "spec": {"plan": "pro"},
        }
    )
    deployment = kopf.Body(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "tenant-acme", "namespace": "tenants"},
            "spec": {"replicas": 1},
        }
    )
    assert storage.build(body=tenant)["spec"] == {"plan": "pro"}
    assert storage.build(body=deployment) == {}
