"""Prometheus metrics of tenant reconciliation (exposed on the control plane's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "tenantry_reconciles_total",
    "Tenant reconcile passes by action and result",
    ["action", "result"],
)
PROVISION_SECONDS = Histogram(
    "tenantry_gateway_start_seconds",
    "Seconds from asking the runtime to run a gateway until it is ready",
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60),
)
TENANTS = Gauge("tenantry_tenants", "Tenants by state", ["state"])
GATEWAY_EVENTS = Counter(
    "tenantry_gateway_events_total", "Crashes, restarts and crash loops of gateways", ["type"]
)
