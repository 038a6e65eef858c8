"""Every tenant-owned table is under a row-level-security policy: a new table with a
``tenant_id`` column fails here until a migration protects it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from control_plane.db.migrate import MIGRATIONS_DIR
from control_plane.db.models import Base


def protected_tables() -> set[str]:
    tables: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        tables |= set(getattr(module, "PROTECTED", {}))
    return tables


def tenant_owned_tables() -> set[str]:
    return {
        table.name
        for table in Base.metadata.tables.values()
        if "tenant_id" in table.columns or table.name == "tenants"
    }


def test_every_tenant_owned_table_has_a_policy() -> None:
    missing = tenant_owned_tables() - protected_tables()
    assert missing == set(), f"add row-level security for {sorted(missing)} in a migration"


def test_the_check_knows_the_tables_it_guards() -> None:
    assert {"tenants", "credentials", "tenant_data_keys", "audit_log"} <= tenant_owned_tables()
    assert Path(MIGRATIONS_DIR).is_dir()
