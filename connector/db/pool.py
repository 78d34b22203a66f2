"""Where the database is, and the one asyncpg pool a process uses.

``DATABASE_URL`` wins. Without it, a private cluster under ``CONNECTOR_HOME`` (default
``.connector/``) is started from the machine's PostgreSQL binaries and reused by every process
that points at the same folder.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

from connector.db.embedded import EmbeddedPostgres
from connector.errors import ConfigError
from connector.store import cluster

log = structlog.get_logger(__name__)


def home(env: Mapping[str, str] | None = None) -> Path:
    """The folder for local state (embedded database, generated key, demo output)."""
    env = os.environ if env is None else env
    return Path(env.get("CONNECTOR_HOME") or ".connector").resolve()


@dataclass
class DatabaseLocation:
    dsn: str
    embedded: EmbeddedPostgres | None


def locate(env: Mapping[str, str] | None = None) -> DatabaseLocation:
    """``DATABASE_URL`` if set, else start (or reuse) the embedded cluster."""
    env = os.environ if env is None else env
    url = env.get("DATABASE_URL")
    if url:
        if not url.startswith(("postgres://", "postgresql://")):
            raise ConfigError("DATABASE_URL must start with postgresql:// (or postgres://)")
        return DatabaseLocation(url, None)
    embedded = EmbeddedPostgres(home(env) / "postgres")
    return DatabaseLocation(embedded.start(), embedded)


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def ensure_database(dsn: str) -> None:
    """Create the DSN's database if missing (for the embedded cluster and test databases)."""
    name = urlsplit(dsn).path.lstrip("/")
    if not name:
        return
    try:
        conn = await asyncpg.connect(_with_database(dsn, "postgres"))
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(f"cannot reach Postgres to create {name!r}: {exc}") from exc
    try:
        if not await cluster.database_exists(conn, name=name):
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()


async def connect(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(f"cannot connect to the database: {exc}") from exc


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """A release costs no round trip: asyncpg still rolls back an open transaction.

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` on every release, a round trip and a statement per use, which a quiet poll
    (three short uses) paid more for than for its own queries. Nothing here outlives its use
    of a connection: LISTEN is undone by the dispatcher that made it, the one session
    advisory lock (migrations) is let go in a ``finally``, cursors live inside transactions
    and no setting is changed outside one.
    """


@asynccontextmanager
async def pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> AsyncIterator[asyncpg.Pool]:
    try:
        created = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, reset=_keep_session
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(f"cannot connect to the database: {exc}") from exc
    try:
        yield created
    finally:
        await created.close()
