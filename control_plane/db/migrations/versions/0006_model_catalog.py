"""model catalog

The platform's models, installation-wide: no ``tenant_id`` column, so no row-level-security
policy (every tenant may learn which models exist; the service filters by plan).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "platform_models",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("base_url", sa.String(length=2048), nullable=False),
        sa.Column("served_model_name", sa.String(length=256), nullable=True),
        sa.Column("context_length", sa.Integer(), nullable=True),
        sa.Column("input_price_micros", sa.BigInteger(), nullable=False),
        sa.Column("output_price_micros", sa.BigInteger(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("plans", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_models")),
        sa.UniqueConstraint("name", name=op.f("uq_platform_models_name")),
    )


def downgrade() -> None:
    op.drop_table("platform_models")
