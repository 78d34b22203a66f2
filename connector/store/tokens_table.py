"""The ``tokens`` table: each connection's access and refresh token, encrypted."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from connector.db.queries import q


async def lock(conn: asyncpg.Connection, *, connection_id: str) -> None:
    """Serialise token refreshes of one connection across processes, until the tx ends."""
    await conn.execute(q("token_lock"), connection_id)


async def get(conn: asyncpg.Connection, *, connection_id: str) -> asyncpg.Record | None:
    """The connection's status, and access_token, refresh_token, expires_at, version (or nulls)."""
    return await conn.fetchrow(q("token_get"), connection_id)


async def store(
    conn: asyncpg.Connection,
    *,
    connection_id: str,
    access_token: bytes,
    refresh_token: bytes | None,
    expires_at: datetime,
    refreshed_at: datetime,
) -> int:
    """Write the connection's tokens (already encrypted); returns the row's new version."""
    version: int = await conn.fetchval(
        q("token_store"), connection_id, access_token, refresh_token, expires_at, refreshed_at
    )
    return version


async def delete(conn: asyncpg.Connection, *, connection_id: str) -> None:
    await conn.execute(q("token_delete"), connection_id)


async def every_token(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """connection_id, access_token and refresh_token of every stored token."""
    return list(await conn.fetch(q("rotation_tokens")))


async def replace(
    conn: asyncpg.Connection,
    *,
    connection_id: str,
    access_token: bytes,
    refresh_token: bytes | None,
    replaced_access: bytes,
    replaced_refresh: bytes | None,
) -> bool:
    """Store the tokens only if the row still holds the replaced ones; True if it did."""
    done = await conn.execute(
        q("rotation_token_update"),
        connection_id,
        access_token,
        refresh_token,
        replaced_access,
        replaced_refresh,
    )
    return str(done).endswith(" 1")


async def forget(conn: asyncpg.Connection, *, connection_id: str, access_token: bytes) -> None:
    """Drop the connection's token if it is still ``access_token``."""
    await conn.execute(q("rotation_token_forget"), connection_id, access_token)
