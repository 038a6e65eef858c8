"""Every tenant-owned table is under a row-level-security policy: a new table with a
``tenant_id`` column fails here until a migration protects it (lists it in its
``PROTECTED``, see ``control_plane/db/__init__.py``)."""

from __future__ import annotations

import importlib.util

from sqlalchemy import Column, MetaData, String, Table

from control_plane.db.migrate import MIGRATIONS_DIR
from control_plane.db.models import Base


def protected_columns() -> dict[str, str]:
    """``{table: tenant column}`` from every migration's ``PROTECTED``."""
    protected: dict[str, str] = {}
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        protected.update(getattr(module, "PROTECTED", {}))
    return protected


def tenant_owned_tables(metadata: MetaData) -> set[str]:
    return {
        table.name
        for table in metadata.tables.values()
        if "tenant_id" in table.columns or table.name == "tenants"
    }


def unprotected(metadata: MetaData) -> set[str]:
    return tenant_owned_tables(metadata) - set(protected_columns())


def test_every_tenant_owned_table_has_a_policy() -> None:
    missing = unprotected(Base.metadata)
    assert missing == set(), f"add row-level security for {sorted(missing)} in a migration"


def test_each_policy_reads_the_tables_tenant_column() -> None:
    tables = Base.metadata.tables
    for table, column in protected_columns().items():
        assert table in tables, f"a policy protects {table}, which the models no longer have"
        expected = "id" if table == "tenants" else "tenant_id"
        assert column == expected, f"{table}'s policy reads {column}, not {expected}"
        assert column in tables[table].columns


def test_a_new_tenant_owned_table_without_a_policy_is_caught() -> None:
    metadata = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    Table(
        "tenant_notes",
        metadata,
        Column("id", String, primary_key=True),
        Column("tenant_id", String),
    )
    assert unprotected(metadata) == {"tenant_notes"}


def test_the_check_knows_the_tables_it_guards() -> None:
    owned = tenant_owned_tables(Base.metadata)
    assert {"tenants", "credentials", "tenant_data_keys", "audit_log", "memberships"} <= owned
    installation_wide = {"users", "admin_tokens", "auth_sessions", "refresh_tokens"}
    assert not owned & (installation_wide | {"api_tokens", "platform_models"})
