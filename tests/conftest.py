"""Shared fixtures: a real, throwaway Postgres for the whole session.

With ``TEST_DATABASE_URL`` set, tests use that server; otherwise a private cluster is started
in a temporary folder from the machine's PostgreSQL binaries and stopped at the end. Each test
that asks for ``database`` gets a fresh database cloned from a migrated template.

Under pytest-xdist (``make test`` runs ``-n``) each worker is a session of its own: it starts
its own cluster (or, on ``TEST_DATABASE_URL``, keeps a template named after itself), so no
worker sees another's databases, backends or restarts. The exchange log is the one thing all
workers share (see ``pytest_configure``).
"""

from __future__ import annotations

import asyncio
import logging
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
import structlog
from hypothesis import settings

from connector.db import migrate as migrations
from connector.db.embedded import EmbeddedPostgres
from connector.db.pool import ensure_database, json_codecs
from connector.sandbox.exchanges import RECORD_ENV
from connector.sandbox.harness import Sandbox, start_sandbox

# The xdist worker's name ("gw0", ...), empty in a run without workers.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
TEMPLATE = f"connector_template_{WORKER}" if WORKER else "connector_template"
# The folder of this session's exchange log, when this session made it.
_RECORD_DIR: list[Path] = []
HOME_ENV = "CONNECTOR_HOME"
# This process's state folder, and the CONNECTOR_HOME it replaced.
_HOME: list[tuple[Path, str | None]] = []


def pytest_configure(config: pytest.Config) -> None:
    """Every sandbox of the session (in this process or a child) logs its exchanges to one
    file, which the contract tests check at the end (tests/contract).

    xdist's workers start after the controller's ``pytest_configure`` and inherit its
    environment, so they all append to the controller's file (one ``write`` per line on an
    ``O_APPEND`` file: lines never interleave); the controller removes it at the end.
    """
    if not os.environ.get(RECORD_ENV):
        folder = Path(tempfile.mkdtemp(prefix="connector-exchanges-"))
        _RECORD_DIR.append(folder)
        os.environ[RECORD_ENV] = str(folder / "exchanges.jsonl")
    # Each process of the run (each xdist worker too) gets a state folder of its own: what a
    # test leaves under the default CONNECTOR_HOME is neither shared between workers nor put
    # in the checkout's own (make run's).
    _HOME.append((Path(tempfile.mkdtemp(prefix="connector-home-")), os.environ.get(HOME_ENV)))
    os.environ[HOME_ENV] = str(_HOME[-1][0])


def pytest_unconfigure(config: pytest.Config) -> None:
    for folder in _RECORD_DIR:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(RECORD_ENV, None)
    for folder, before in _HOME:
        shutil.rmtree(folder, ignore_errors=True)
        if before is None:
            os.environ.pop(HOME_ENV, None)
        else:
            os.environ[HOME_ENV] = before


def exchange_log_is_this_sessions() -> bool:
    """Did this session make the exchange log (rather than find it in the environment)?"""
    return bool(_RECORD_DIR)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The check of the whole session's exchanges runs last, when they have all been made.

    An xdist worker cannot know when the others are done, so in a run of other tests too the
    check is skipped there: ``make test`` runs it alone once every worker has finished, on the
    log they shared (and its parts side by side on workers of their own).
    """
    last = [item for item in items if item.get_closest_marker("after_all_exchanges")]
    items.sort(key=lambda item: item in last)
    if WORKER and len(last) < len(items):
        skip = pytest.mark.skip(
            reason="checks the whole run's exchanges: run it alone after the xdist run"
            " (make test does)"
        )
        for item in last:
            item.add_marker(skip)


# Property tests never race a clock: a loaded CI machine must not turn a slow example into
# a failure. "ci" (the default) also prints the blob that reproduces a failure; "dev" is for
# a quick local run, "thorough" for hunting.
settings.register_profile("ci", deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=25)
settings.register_profile("thorough", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
    # The cluster's password file sits beside its folder, in this private one; the postgres
    # user may pass through to the cluster but not list it.
    base = Path(tempfile.mkdtemp(prefix="connector-test-"))
    os.chmod(base, 0o711)  # noqa: S103 - traverse only, for the postgres user
    embedded = EmbeddedPostgres(base / "pg")
    dsn = embedded.start()
    server = PostgresServer(with_database(dsn, "postgres"), embedded)
    try:
        asyncio.run(ensure_database(server.dsn_for("postgres")))
        asyncio.run(_prepare_template(server))
        yield server
    finally:
        embedded.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


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
    pool = await asyncpg.create_pool(database, min_size=1, max_size=10, init=json_codecs)
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


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put structlog and the stdlib root logger back as they were, for tests that configure
    logging themselves (connector.logging.configure replaces both process-wide)."""
    saved = structlog.get_config()
    root = logging.getLogger()
    level = root.level
    handlers = list(root.handlers)
    levels = {name: logging.getLogger(name).level for name in ("aiohttp.access", "apscheduler")}
    try:
        yield
    finally:
        structlog.reset_defaults()
        structlog.configure(**saved)
        for handler in list(root.handlers):
            # pytest's own capture handlers come and go per phase; leave those to pytest.
            if handler not in handlers and not type(handler).__module__.startswith("_pytest"):
                root.removeHandler(handler)
        for handler in handlers:
            if handler not in root.handlers and not type(handler).__module__.startswith("_pytest"):
                root.addHandler(handler)
        root.setLevel(level)
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)
