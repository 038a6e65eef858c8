"""Tenantry's tenant gateway: one process per tenant, serving an OpenAI-compatible API.

Started by a runtime of the control plane (``python -m tenant_gateway`` or
``tenantry gateway``); what the two share is in :mod:`tenant_gateway.contract`.
"""
