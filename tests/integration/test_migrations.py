"""Migrations on a real Postgres."""

from __future__ import annotations

import asyncio
from importlib import resources

import asyncpg

from connector.db import migrate as migrations

SCHEMA_QUERY = """
SELECT 'column' AS kind, table_name || '.' || column_name AS name,
       data_type || ' null=' || is_nullable || ' default=' || coalesce(column_default, '') AS detail
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger', tgrelid::regclass::text || '.' || tgname, pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE NOT t.tgisinternal AND c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT 'function', p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       pg_get_functiondef(p.oid)
  FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
ORDER BY 1, 2, 3
"""


async def _schema(dsn: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(SCHEMA_QUERY)
    finally:
        await conn.close()
    return [
        (r["kind"], r["name"], r["detail"])
        for r in rows
        if not r["name"].startswith("schema_migrations")
    ]


async def test_migrate_from_empty_then_again_is_a_no_op(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        first = await migrations.migrate(conn)
        second = await migrations.migrate(conn)
        status = await migrations.status(conn)
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
    finally:
        await conn.close()
    assert [m.version for m in first] == [m.version for m in migrations.available()]
    assert second == []
    assert all(s.applied_at is not None for s in status)
    assert {
        "connections",
        "tokens",
        "flow_states",
        "snapshot_items",
        "events",
        "deliveries",
        "delivery_attempts",
        "leases",
        "poll_runs",
        "schema_migrations",
    } <= tables


async def test_status_on_an_empty_database_lists_everything_pending(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        status = await migrations.status(conn)
    finally:
        await conn.close()
    assert status
    assert all(s.applied_at is None for s in status)


async def test_concurrent_migrations_end_with_one_schema(empty_database: str) -> None:
    conns = [await asyncpg.connect(empty_database) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrations.migrate(c) for c in conns))
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        for conn in conns:
            await conn.close()
    applied = [m.version for result in results for m in result]
    assert sorted(applied) == [m.version for m in migrations.available()]
    assert count == len(migrations.available())


async def test_schema_sql_equals_migrated_schema(empty_database: str, database: str) -> None:
    schema_sql = (resources.files("connector.db") / "schema.sql").read_text()
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute(schema_sql)
    finally:
        await conn.close()
    from_schema = await _schema(empty_database)
    from_migrations = await _schema(database)
    assert from_schema == from_migrations
    assert len(from_migrations) > 50
    kinds = {kind for kind, _name, _detail in from_migrations}
    assert {"trigger", "function"} <= kinds
    assert ("trigger", "deliveries.deliveries_notify") in {(k, n) for k, n, _ in from_migrations}


async def test_the_schema_comparison_sees_a_drifted_trigger_function(database: str) -> None:
    before = await _schema(database)
    conn = await asyncpg.connect(database)
    try:
        # Same name, same trigger, another body: the wake-up would go to the wrong channel.
        await conn.execute(
            "CREATE OR REPLACE FUNCTION deliveries_notify() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN PERFORM pg_notify('elsewhere', ''); RETURN NULL; END $$"
        )
    finally:
        await conn.close()
    after = await _schema(database)
    assert [row for row in after if row not in before] == [
        row for row in after if row[0] == "function" and row[1] == "deliveries_notify()"
    ]
    assert before != after


async def test_changed_migration_is_refused(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
        try:
            await migrations.migrate(conn)
        except migrations.MigrationMismatch as exc:
            message = str(exc)
        else:
            message = ""
    finally:
        await conn.close()
    assert "0001_initial was changed after it was applied" in message
