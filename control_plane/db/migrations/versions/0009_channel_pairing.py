"""channel pairing

``pairing_codes``: the codes tenants asked for to pair a chat through a platform bot, stored
only as keyed digests, each usable once until it expires; ``channel_bindings``: the chats
bound to a tenant, at most one tenant per (channel, chat id). Both are tenant-owned, under
the same row-level-security policy as the others (see 0005).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 23:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PROTECTED = {
    "pairing_codes": "tenant_id",
    "channel_bindings": "tenant_id",
}
PLATFORM = "current_setting('app.platform', true) = 'on'"


def visible(column: str) -> str:
    return (
        f"({PLATFORM} OR {column} = ANY (string_to_array("
        f"current_setting('app.tenant_id', true), ',')))"
    )


def upgrade() -> None:
    op.create_table(
        "pairing_codes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by_chat", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_pairing_codes_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pairing_codes")),
        sa.UniqueConstraint("digest", name=op.f("uq_pairing_codes_digest")),
    )
    op.create_index("ix_pairing_codes_tenant_id", "pairing_codes", ["tenant_id"])
    op.create_table(
        "channel_bindings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_channel_bindings_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_bindings")),
        sa.UniqueConstraint(
            "channel", "chat_id", name=op.f("uq_channel_bindings_channel_chat_id")
        ),
    )
    op.create_index("ix_channel_bindings_tenant_id", "channel_bindings", ["tenant_id"])
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
    op.drop_index("ix_channel_bindings_tenant_id", table_name="channel_bindings")
    op.drop_table("channel_bindings")
    op.drop_index("ix_pairing_codes_tenant_id", table_name="pairing_codes")
    op.drop_table("pairing_codes")
