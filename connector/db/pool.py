"""Where the database is, and the one asyncpg pool a process uses.

``DATABASE_URL`` wins. Without it, a private cluster under ``CONNECTOR_HOME`` (default
``.connector/``) is started from the machine's PostgreSQL binaries and reused by every process
that points at the same folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
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


def _encode_json(value: Any) -> str:
    # default=str: a datetime inside a cursor or payload is stored as its ISO text, as the
    # canonical JSON of events and digests has it.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


async def json_codecs(conn: asyncpg.Connection) -> None:
    """json and jsonb travel as Python values both ways, on every connection we open.

    Callers hand the store dicts and lists, and get dicts and lists back: nobody decodes a
    ``cursor`` or a ``payload`` by hand, nor can pass text that is then stored as a JSON
    string.
    """
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_encode_json, decoder=json.loads, schema="pg_catalog", format="text"
        )


async def connect(dsn: str) -> asyncpg.Connection:
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(f"cannot connect to the database: {exc}") from exc
    try:
        await json_codecs(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


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
            dsn, min_size=min_size, max_size=max_size, reset=_keep_session, init=json_codecs
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(f"cannot connect to the database: {exc}") from exc
    try:
        yield created
    finally:
        await created.close()
