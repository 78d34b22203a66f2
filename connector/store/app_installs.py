"""App installs: ``connections`` rows with an install id, and everything purged with one."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from connector.db.queries import q
from connector.store import tokens_table

# The poll lease goes first: deleting it waits for a poll of the install that is committing
# right now (it holds the row), and a poll that commits later finds no lease and commits
# nothing. The connection row goes last.
_PURGE_BEFORE_TOKENS = (
    "install_purge_poll_lease",
    "install_purge_snapshots",
    "install_purge_deliveries",
    "install_purge_events",
    "install_purge_cursors",
    "install_purge_poll_runs",
)


async def find(conn: asyncpg.Connection, *, install_id: str) -> asyncpg.Record | None:
    """id, provider, status and account_id of the install's connection."""
    return await conn.fetchrow(q("install_find"), install_id)


async def upsert(
    conn: asyncpg.Connection,
    *,
    connection_id: str,
    provider: str,
    install_id: str,
    account_id: str,
    scopes: Sequence[str] | None,
    credentials: bytes | None,
) -> str | None:
    """Store the install as a connection; None if the id is the flow file's or another account's."""
    stored: str | None = await conn.fetchval(
        q("install_upsert"),
        connection_id,
        provider,
        install_id,
        account_id,
        scopes,
        credentials,
    )
    return stored


async def active(conn: asyncpg.Connection, *, app: str) -> list[str]:
    """The connection ids of an app's active installs, in order."""
    return [row["id"] for row in await conn.fetch(q("installs_active"), app)]


async def purge(conn: asyncpg.Connection, *, connection_id: str) -> None:
    """Delete everything tied to an install, in the order above; call it in a transaction."""
    for name in _PURGE_BEFORE_TOKENS:
        await conn.execute(q(name), connection_id)
    await tokens_table.delete(conn, connection_id=connection_id)
    await conn.execute(q("install_purge_connection"), connection_id)
