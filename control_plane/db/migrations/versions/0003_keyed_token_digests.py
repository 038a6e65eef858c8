"""keyed token digests

Admin-token and gateway-key digests were plain SHA-256 of the token; from here on they are
HMAC-SHA256 over that SHA-256 under the token hash key (see control_plane.vault.digests).
The conversion needs the key, which only the running control plane holds: it passes a
``rekey_digest(sha256_hex, tenant_id_or_None)`` function in the alembic config's attributes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 10:05:00
"""

from alembic import context, op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    admin = bind.execute(sa.text("SELECT id, digest FROM admin_tokens")).all()
    keys = bind.execute(sa.text("SELECT id, tenant_id, digest FROM gateway_keys")).all()
    if not admin and not keys:
        return
    rekey = context.config.attributes.get("rekey_digest")
    if rekey is None:
        raise RuntimeError(
            "migration 0003 re-keys stored token digests and needs the token hash key: "
            "run it through `tenantry` (any command that opens the database), not bare alembic"
        )
    for row_id, digest in admin:
        bind.execute(
            sa.text("UPDATE admin_tokens SET digest = :digest WHERE id = :id"),
            {"digest": rekey(digest, None), "id": row_id},
        )
    for row_id, tenant_id, digest in keys:
        bind.execute(
            sa.text("UPDATE gateway_keys SET digest = :digest WHERE id = :id"),
            {"digest": rekey(digest, tenant_id), "id": row_id},
        )


def downgrade() -> None:
    raise NotImplementedError("keyed digests cannot be turned back into plain SHA-256")
