"""Tenants: their wire shapes, lifecycle rules, events and gateway keys.

Services here own every state change; transport (``control_plane.api``) stays thin and the
reconciler reports what it observed through :class:`~.lifecycle.TenantLifecycle`.
"""
