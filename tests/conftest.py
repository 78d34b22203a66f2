"""Shared fixtures: a real, throwaway Postgres for the whole session.

With ``TEST_DATABASE_URL`` set, tests use that server; otherwise a private cluster is started
in a temporary folder from the machine's PostgreSQL binaries and stopped at the end. Each test
that asks for ``database`` gets a fresh database cloned from a migrated template.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from connector.db import migrate as migrations
from connector.db.embedded import EmbeddedPostgres
from connector.db.pool import ensure_database
from connector.sandbox.exchanges import RECORD_ENV
from connector.sandbox.testing import Sandbox, start_sandbox

TEMPLATE = "connector_template"
# The folder of this session's exchange log, when this session made it.
_RECORD_DIR: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    """Every sandbox of the session (in this process or a child) logs its exchanges to one
    file, which the contract tests check at the end (tests/contract)."""
    if not os.environ.get(RECORD_ENV):
        folder = Path(tempfile.mkdtemp(prefix="connector-exchanges-"))
        _RECORD_DIR.append(folder)
        os.environ[RECORD_ENV] = str(folder / "exchanges.jsonl")


def pytest_unconfigure(config: pytest.Config) -> None:
    for folder in _RECORD_DIR:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(RECORD_ENV, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The check of the whole session's exchanges runs last, when they have all been made."""
    items.sort(key=lambda item: item.get_closest_marker("after_all_exchanges") is not None)


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


class PostgresServer:
    """The session's server: a DSN to its ``postgres`` database and, if ours, the cluster."""

    def __init__(self, dsn: str, embedded: EmbeddedPostgres | None) -> None:
        self.dsn = dsn
        self.embedded = embedded

    def dsn_for(self, name: str) -> str:
        return with_database(self.dsn, name)


async def _prepare_template(server: PostgresServer) -> None:
    admin = await asyncpg.connect(server.dsn_for("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(server.dsn_for(TEMPLATE))
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        server = PostgresServer(url, None)
        asyncio.run(_prepare_template(server))
        yield server
        return
    root = Path(tempfile.mkdtemp(prefix="connector-pg-"))
    os.chmod(root, 0o755)  # noqa: S103 - the postgres user must reach its data folder
    embedded = EmbeddedPostgres(root)
    dsn = embedded.start()
    server = PostgresServer(with_database(dsn, "postgres"), embedded)
    try:
        asyncio.run(ensure_database(server.dsn_for("postgres")))
        asyncio.run(_prepare_template(server))
        yield server
    finally:
        embedded.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


async def _admin(server: PostgresServer, sql: str) -> None:
    admin = await asyncpg.connect(server.dsn_for("postgres"))
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@asynccontextmanager
async def _throwaway(
    server: PostgresServer, prefix: str, template: str | None
) -> AsyncIterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    await _admin(server, f'CREATE DATABASE "{name}"{clause}')
    try:
        yield server.dsn_for(name)
    finally:
        await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """A fresh, migrated database for one test; yields its DSN."""
    async with _throwaway(postgres_server, "test", TEMPLATE) as dsn:
        yield dsn


@pytest.fixture
async def empty_database(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """A fresh database with no schema at all; yields its DSN."""
    async with _throwaway(postgres_server, "empty", None) as dsn:
        yield dsn


@pytest.fixture
async def db_pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    """A running SendPulse sandbox on loopback (`start_sandbox()` defaults); yields its handle."""
    async with start_sandbox() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """One plain client session for a test (webhook tests use a guarded one of their own)."""
    async with aiohttp.ClientSession() as session:
        yield session
