"""The ``schema_migrations`` table: which numbered migrations a database has, and the lock
that keeps two migrators apart."""

from __future__ import annotations

import asyncpg

from connector.db.queries import q


async def lock(conn: asyncpg.Connection) -> None:
    """Wait for the migration lock (a session lock: :func:`unlock` gives it back)."""
    await conn.execute(q("migration_lock"))


async def unlock(conn: asyncpg.Connection) -> None:
    await conn.execute(q("migration_unlock"))


async def create_table(conn: asyncpg.Connection) -> None:
    """``schema_migrations``, if the database does not have it yet."""
    await conn.execute(q("create_migrations_table"))


async def table_exists(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(q("migrations_table_exists")))


async def applied(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """version, name, checksum and applied_at of every applied migration, in order."""
    return list(await conn.fetch(q("applied_migrations")))


async def record(conn: asyncpg.Connection, *, version: int, name: str, checksum: str) -> None:
    await conn.execute(q("record_migration"), version, name, checksum)
