"""Persistence: SQLAlchemy tables, the async engine, and alembic migrations.

Runs on SQLite (the embedded default, through aiosqlite) and PostgreSQL (psycopg 3).

Tenant isolation on PostgreSQL is row-level security (migration ``0005``): every
tenant-owned table has ``ENABLE`` and ``FORCE ROW LEVEL SECURITY`` and a policy admitting a
row only in platform mode or when ``app.tenant_id`` names its tenant; ``engine.Database``
sets both per transaction. A migration that adds a tenant-owned table (one with a
``tenant_id`` column) must protect it in the same migration: export a module-level
``PROTECTED = {"table": "tenant_id"}`` and, on PostgreSQL only, run the statements of
``0005_row_level_security.upgrade`` for it (and drop the policy in ``downgrade``).
``tests/unit/db/test_rls_coverage.py`` fails until every such table is in some
migration's ``PROTECTED``, and ``tests/integration/rls`` then proves the policy holds. The
application role's grants need nothing: ``migrate.upgrade`` grants on every table at each
start.
"""
