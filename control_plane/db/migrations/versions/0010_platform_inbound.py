"""platform inbound

``platform_inbound``: messages of the platform Telegram bot's bound chats that their tenant's
gateway could not take yet, kept until it does. Tenant-owned, under the same row-level-security
policy as the others (see 0005).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 16:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

PROTECTED = {"platform_inbound": "tenant_id"}
PLATFORM = "current_setting('app.platform', true) = 'on'"


def visible(column: str) -> str:
    return (
        f"({PLATFORM} OR {column} = ANY (string_to_array("
        f"current_setting('app.tenant_id', true), ',')))"
    )


def upgrade() -> None:
    op.create_table(
        "platform_inbound",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_platform_inbound_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_inbound")),
    )
    op.create_index("ix_platform_inbound_tenant_id", "platform_inbound", ["tenant_id"])
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
    op.drop_index("ix_platform_inbound_tenant_id", table_name="platform_inbound")
    op.drop_table("platform_inbound")
