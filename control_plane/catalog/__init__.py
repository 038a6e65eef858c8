"""The model catalog: the platform's models served by the vLLM fleet, which plans may use
them, and what they cost.

Platform admins keep it (``/api/v1/models``); the reconciler hands each tenant's gateway the
enabled entries its plan allows (the bundle's ``platform_models``). An empty catalog hands
gateways nothing, so they list whatever the fleet itself serves. Imports persistence and the
audit log only; whoever builds it says which plans exist and whom to tell of a change.
"""
