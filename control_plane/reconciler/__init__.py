"""The tenant reconciler: makes each tenant's gateway match its desired state.

Driven by ``generation`` (desired) against ``observed_generation`` (achieved), woken by API
changes and runtime events, and re-swept periodically, so a restart loses nothing: on start
it accounts for every tenant and adopts the gateways that are still running.
"""

from control_plane.reconciler.loop import TenantReconciler

__all__ = ["TenantReconciler"]
