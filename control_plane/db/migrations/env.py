"""Alembic environment: migrations run on a synchronous engine built from the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from control_plane.db.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "sqlalchemy.url is set by control_plane.db.migrate"

engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    if connection.dialect.name == "postgresql":
        # Migrations work on every tenant's rows: platform mode for this session.
        connection.exec_driver_sql("SET app.platform = 'on'")
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
