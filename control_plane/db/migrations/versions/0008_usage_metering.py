"""usage metering

``usage_events``: each usage event a tenant's gateway reported, keyed by (tenant, event id)
so a redelivered event is stored once; ``usage_daily``: per tenant, UTC day, model and
payer, the totals of the events, updated in the transactions that insert them. Both are
tenant-owned, under the same row-level-security policy as the others (see 0005).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 12:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PROTECTED = {
    "usage_events": "tenant_id",
    "usage_daily": "tenant_id",
}
PLATFORM = "current_setting('app.platform', true) = 'on'"


def visible(column: str) -> str:
    return (
        f"({PLATFORM} OR {column} = ANY (string_to_array("
        f"current_setting('app.tenant_id', true), ',')))"
    )


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("byok", sa.Boolean(), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=True),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=True),
        sa.Column("latency", sa.Float(), nullable=False),
        sa.Column("time_to_first_token", sa.Float(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_usage_events_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_usage_events")),
    )
    op.create_index("ix_usage_events_tenant_id_at", "usage_events", ["tenant_id", "at"])
    op.create_table(
        "usage_daily",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("byok", sa.Boolean(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_usage_daily_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "day", "model", "byok", name=op.f("pk_usage_daily")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in PROTECTED.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING {visible(column)} WITH CHECK {visible(column)}"
        )


def downgrade() -> None:
    op.drop_table("usage_daily")
    op.drop_index("ix_usage_events_tenant_id_at", table_name="usage_events")
    op.drop_table("usage_events")
