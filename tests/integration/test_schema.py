"""The migrated schema obeys the Citus rules of SPEC §10 (read from the catalog)."""

from __future__ import annotations

import psycopg
import pytest

from extsched.db import migrate

REFERENCE_TABLES = {
    "extension",
    "extension_version",
    "extension_api_endpoint",
    "api_token",
    "ui_session",
    "sso_jti",
}
TENANT_TABLES = {
    "tenant",
    "tenant_extension_install",
    "tenant_extension_schedule",
    "extension_schedule_run",
    "extension_audit_log",
    "rate_limit_counter",
    "job_handle",
    "tenant_notification",
    "notification_delivery",
}


@pytest.fixture
def conn(db_url: str):  # type: ignore[no-untyped-def]
    with psycopg.connect(db_url) as c:
        yield c


def _tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables "
        "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
    ).fetchall()
    return {r[0] for r in rows}


def test_it_classifies_every_table(conn: psycopg.Connection) -> None:
    assert _tables(conn) == REFERENCE_TABLES | TENANT_TABLES


def test_it_leads_every_tenant_key_with_tenant_id(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        """
        SELECT t.relname, i.relname, a.attname
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0]
        WHERE x.indisunique
        """
    ).fetchall()
    checked = 0
    for table, index, first_col in rows:
        if table in TENANT_TABLES:
            checked += 1
            assert first_col == "tenant_id", f"{index} on {table} leads with {first_col}"
    assert checked >= len(TENANT_TABLES)  # every tenant table has at least its primary key


def test_it_has_no_cascades_and_no_foreign_keys_between_distributed_tables(
    conn: psycopg.Connection,
) -> None:
    rows = conn.execute(
        """
        SELECT c.conname, src.relname, dst.relname, c.confdeltype
        FROM pg_constraint c
        JOIN pg_class src ON src.oid = c.conrelid
        JOIN pg_class dst ON dst.oid = c.confrelid
        WHERE c.contype = 'f'
        """
    ).fetchall()
    for name, src, dst, deltype in rows:
        assert deltype != "c", f"{name} cascades"
        assert not (src in TENANT_TABLES and dst in TENANT_TABLES), f"{name}: {src} -> {dst}"
        # A distributed table may only reference a reference table.
        if src in TENANT_TABLES:
            assert dst in REFERENCE_TABLES


def test_it_calls_citus_only_when_present(conn: psycopg.Connection) -> None:
    files = sorted((migrate.MIGRATIONS_DIR / "versions").glob("0*.sql"))
    sql = "\n".join(f.read_text() for f in files)
    for f in files:
        text = f.read_text()
        if "create_" in text:
            assert "IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')" in text
    for table in REFERENCE_TABLES:
        assert f"create_reference_table('{table}')" in sql
    for table in TENANT_TABLES:
        assert f"create_distributed_table('{table}', 'tenant_id'" in sql


def test_it_migrates_idempotently(db_url: str) -> None:
    migrate.upgrade(db_url)
    newest = max(p.name[:4] for p in (migrate.MIGRATIONS_DIR / "versions").glob("0*.py"))
    assert migrate.current_revision(db_url) == newest == "0011"
