"""row-level security on tenant-owned tables (PostgreSQL)

Every tenant-owned table gets ``ENABLE`` and ``FORCE ROW LEVEL SECURITY`` (FORCE: the table
owner is bound too, so single-role installations are protected as well) and a policy that
lets a row through only when the transaction is in platform mode (``app.platform = 'on'``)
or names the row's tenant in ``app.tenant_id`` (comma-separated ids). The settings are set
per transaction by ``control_plane.db.engine.Database.transaction``; without them no
tenant-owned row is visible. The audit log is append-only for the application: rows can be
inserted (installation-wide ones, without a tenant, from any transaction) and read, never
updated or deleted.

A new tenant-owned table must be added to ``PROTECTED`` in a new migration with the same
statements; ``tests/unit/db/test_rls_coverage.py`` fails until it is.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 10:45:00
"""

from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

PROTECTED = {
    "tenants": "id",
    "tenant_events": "tenant_id",
    "gateway_keys": "tenant_id",
    "idempotency_keys": "tenant_id",
    "tenant_data_keys": "tenant_id",
    "credentials": "tenant_id",
    "gateway_identities": "tenant_id",
    "memberships": "tenant_id",
    "invitations": "tenant_id",
    "audit_log": "tenant_id",
}
PLATFORM = "current_setting('app.platform', true) = 'on'"


def visible(column: str) -> str:
    return (
        f"({PLATFORM} OR {column} = ANY (string_to_array("
        f"current_setting('app.tenant_id', true), ',')))"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in PROTECTED.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        if table == "audit_log":
            op.execute(f"CREATE POLICY tenant_read ON {table} FOR SELECT USING {visible(column)}")
            op.execute(
                f"CREATE POLICY tenant_append ON {table} FOR INSERT "
                f"WITH CHECK ({column} IS NULL OR {visible(column)})"
            )
            continue
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING {visible(column)} WITH CHECK {visible(column)}"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in PROTECTED:
        for policy in ("tenant_isolation", "tenant_read", "tenant_append"):
            op.execute(f"DROP POLICY IF EXISTS {policy} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
