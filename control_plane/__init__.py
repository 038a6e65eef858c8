"""Tenantry's control plane: provisions and operates one gateway per tenant.

Layers, enforced by import-linter (see ``pyproject.toml``), from the outside in:

``cli`` → ``app`` → ``api`` (HTTP transport) → ``reconciler`` → ``tenants`` | ``identity``
(rules and state transitions) → ``runtime`` (local processes, later Kubernetes) → ``db``
(SQLAlchemy models, engine, migrations) → ``settings`` | ``errors``.
"""
