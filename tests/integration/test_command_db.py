"""The one way a CLI command opens the database, against a server named by DATABASE_URL."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from connector.db.command_db import with_command_db
from connector.errors import ConfigError
from tests.conftest import PostgresServer


def _missing(server: PostgresServer) -> tuple[str, str]:
    name = f"cmd_{uuid.uuid4().hex[:12]}"
    return name, server.dsn_for(name)


async def _drop(server: PostgresServer, name: str) -> None:
    admin = await asyncpg.connect(server.dsn_for("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _tables(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
    )
    return count


async def test_a_reading_command_never_creates_a_database_it_was_not_given(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, dsn = _missing(postgres_server)
    monkeypatch.setenv("DATABASE_URL", dsn)
    with pytest.raises(ConfigError, match=r"^the database does not exist yet; run: connector"):
        await with_command_db(_tables)
    admin = await asyncpg.connect(postgres_server.dsn_for("postgres"))
    try:
        assert not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await admin.close()


async def test_a_schema_command_creates_the_database_and_leaves_the_schema_to_itself(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, dsn = _missing(postgres_server)
    monkeypatch.setenv("DATABASE_URL", dsn)
    try:
        assert await with_command_db(_tables, manages_schema=True) == 0
    finally:
        await _drop(postgres_server, name)


async def test_a_reading_command_on_an_unmigrated_server_points_to_db_migrate(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database)

    async def read_deliveries(conn: asyncpg.Connection) -> object:
        return await conn.fetch("SELECT id FROM deliveries")

    with pytest.raises(ConfigError, match=r"^the database has no delivery tables yet; run: "):
        await with_command_db(read_deliveries)
    # Not migrated behind the operator's back either.
    conn = await asyncpg.connect(empty_database)
    try:
        assert await _tables(conn) == 0
    finally:
        await conn.close()


async def test_a_reading_command_gets_the_migrated_database_it_was_given(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database)
    assert await with_command_db(_tables) > 5
