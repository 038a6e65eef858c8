"""The Tenant resource and its gateway: the spec (a published contract), the manifests built
from it, the status worked out from the cluster, and the kopf handlers that tie them together.

Layers, outermost first (import-linter enforces them): ``handlers`` → ``reconciler`` →
``apply`` | ``manifests`` | ``status`` → ``spec``.
"""
