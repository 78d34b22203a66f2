"""The database as a CLI command opens it: one connection, and the embedded cluster stopped
again afterwards if this command is the one that started it.

Two kinds of command use it. Schema commands (``db migrate``, ``db status``) create the
database wherever it is and leave the schema to themselves. Every other command (deliveries,
events, replay, status, secret rotate) makes only our private cluster ready by itself, as
``connector run`` would; a server named by ``DATABASE_URL`` is the operator's to migrate, so
a missing database or table there is a :class:`ConfigError` that says which command to run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from connector.db import migrate as migrations
from connector.db.pool import connect, ensure_database, locate
from connector.errors import ConfigError

T = TypeVar("T")
RUN_MIGRATE = "run: connector db migrate"


async def with_command_db(
    work: Callable[[asyncpg.Connection], Awaitable[T]], *, manages_schema: bool = False
) -> T:
    """Run ``work`` on a connection to the configured database, then let go of everything."""
    location = locate()
    try:
        if manages_schema or location.embedded is not None:
            await ensure_database(location.dsn)
        if manages_schema:
            conn = await connect(location.dsn)
        else:
            conn = await _connect_ready(location.dsn)
        try:
            if manages_schema:
                return await work(conn)
            if location.embedded is not None:
                await migrations.migrate(conn)
            try:
                return await work(conn)
            except asyncpg.UndefinedTableError:
                raise ConfigError(
                    f"the database has no delivery tables yet; {RUN_MIGRATE}"
                ) from None
        finally:
            await conn.close()
    finally:
        if location.embedded is not None and location.embedded.started_here:
            location.embedded.stop()


async def _connect_ready(dsn: str) -> asyncpg.Connection:
    try:
        return await connect(dsn)
    except ConfigError as exc:
        if isinstance(exc.__cause__, asyncpg.InvalidCatalogNameError):
            raise ConfigError(f"the database does not exist yet; {RUN_MIGRATE}") from None
        raise
