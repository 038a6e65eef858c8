"""tenant model routes

A tenant's own names for models (aliases) and fallback chains, as JSON on its row; they
reach its gateway with the bundle.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(
            sa.Column("model_routes", sa.JSON(), nullable=False, server_default="{}")
        )


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("model_routes")
