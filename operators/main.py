"""Start the Tenant operator: settings, Kubernetes credentials, kopf.

``tenantry operator`` calls :func:`run`. Without a namespace the operator is cluster-wide (kopf's
``-A``), the way the Helm chart runs it. kopf and the ``kubernetes`` client share one
:class:`kubernetes.client.ApiClient`: kopf's login handler hands kopf the same server and
credentials, read from the in-cluster service account or else the kubeconfig; tests pass a
client of their own, pointed at an emulator.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Iterable
from typing import Any

import kopf

from operators.config import OperatorConfig, load_config
from operators.errors import OperatorError, OperatorSettingsError
from operators.tenant.apply import Cluster
from operators.tenant.handlers import CHILD_KINDS, TenantHandlers, build_registry
from operators.tenant.reconciler import TenantReconciler

log = logging.getLogger(__name__)

PREFIX = "tenantry.dev"
FINALIZER = f"{PREFIX}/finalizer"
EXIT_OK = 0
EXIT_CONFIG = 78  # EX_CONFIG: bad settings or no credentials


def api_client_from_environment() -> Any:
    """The in-cluster service account when running in a pod, else the kubeconfig."""
    from kubernetes import client as k8s
    from kubernetes import config as kube_config

    configuration = k8s.Configuration()
    try:
        kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kube_config.ConfigException:
        try:
            kube_config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except (kube_config.ConfigException, OSError) as exc:
            raise OperatorSettingsError(
                "the operator needs an in-cluster service account or a usable kubeconfig "
                f"(KUBECONFIG): {exc}"
            ) from exc
    return k8s.ApiClient(configuration)


def connection_info(configuration: Any, settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    """kopf's credentials, taken from the ``kubernetes`` client's configuration."""
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0] if parts else None)
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        trust_env=settings.networking.trust_env,
    )


class TenantDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf's diff base (the last handled spec, in an annotation), built for Tenants only.

    kopf works out an object's essence on every event of every watched kind, by deep-copying
    the whole object, to diff it against the last handled one. Only Tenants have change
    handlers; the children have event handlers, which never see a diff, so their essence is
    left empty and a child's event costs no copy of it (a Deployment's is the largest)."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        if body.get("kind") in CHILD_KINDS:
            return kopf.BodyEssence()
        return super().build(body=body, extra_fields=extra_fields)


def operator_settings() -> kopf.OperatorSettings:
    """kopf's settings: our own finalizer and annotations, nothing written into the status
    but what the operator reports."""
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = TenantDiffBase(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # Kubernetes events only for trouble
    settings.watching.server_timeout = 600
    return settings


def build(api_client: Any, config: OperatorConfig) -> kopf.OperatorRegistry:
    """The registry of the operator's handlers, logging kopf in with ``api_client``."""
    reconciler = TenantReconciler(
        Cluster(api_client, request_timeout=config.request_timeout),
        concurrency=config.reconcile_concurrency,
    )
    registry = build_registry(TenantHandlers(reconciler, config))

    @kopf.on.login(registry=registry)
    def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
        return connection_info(api_client.configuration, settings)

    return registry


async def operate(
    namespace: str | None,
    *,
    api_client: Any,
    config: OperatorConfig,
    standalone: bool = False,
    liveness_endpoint: str | None = None,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    """Run the operator in the current event loop until ``stop_flag`` is set (or a signal)."""
    await kopf.operator(
        registry=build(api_client, config),
        settings=operator_settings(),
        clusterwide=namespace is None,
        namespaces=[namespace] if namespace else (),
        standalone=standalone or None,
        liveness_endpoint=liveness_endpoint,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run(
    namespace: str | None = None,
    *,
    standalone: bool = False,
    liveness_endpoint: str | None = None,
    api_client: Any | None = None,
    config: OperatorConfig | None = None,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
) -> int:
    """Run the operator until stopped; returns the process exit code.

    ``namespace=None`` watches Tenants in every namespace. ``api_client`` and ``config``
    default to the environment's (``TENANTRY_*`` variables, in-cluster or kubeconfig)."""
    try:
        config = config or load_config(os.environ)
        if api_client is None:
            _configure_logging(config.log_level)
            api_client = api_client_from_environment()
    except OperatorError as exc:
        print(f"tenantry operator: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    asyncio.run(
        operate(
            namespace,
            api_client=api_client,
            config=config,
            standalone=standalone,
            liveness_endpoint=liveness_endpoint,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    )
    return EXIT_OK
