"""The ``connections`` table: each connection's settings, credentials, status and account."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from connector.db.queries import q


async def ensure(conn: asyncpg.Connection, *, connection_id: str, provider: str) -> None:
    """A row for the connection, if it has none yet."""
    await conn.execute(q("connection_ensure"), connection_id, provider)


async def upsert_config(
    conn: asyncpg.Connection,
    *,
    connection_id: str,
    provider: str,
    scopes: Sequence[str] | None,
    credentials: bytes,
    reactivate: bool,
) -> None:
    """Store a flow-file connection; ``reactivate`` (its credentials changed) clears its status."""
    await conn.execute(
        q("connection_upsert_config"), connection_id, provider, scopes, credentials, reactivate
    )


async def get(conn: asyncpg.Connection, *, connection_id: str) -> asyncpg.Record | None:
    """id, provider, source, status, install_id, account_id, scopes, credentials, status_reason."""
    return await conn.fetchrow(q("connection_get"), connection_id)


async def mark_needs_reauth(conn: asyncpg.Connection, *, connection_id: str, reason: str) -> bool:
    """Flag an active connection; True only for the caller whose call flipped it."""
    return await conn.fetchval(q("connection_mark_needs_reauth"), connection_id, reason) is not None


async def record_account(
    conn: asyncpg.Connection, *, connection_id: str, fingerprint: str
) -> str | None:
    """Store the fingerprint of the connection's account; the previous one if this changed it."""
    previous: str | None = await conn.fetchval(
        q("connection_account_record"), connection_id, fingerprint
    )
    return previous


async def with_credentials(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """id and credentials of every connection that stores credentials."""
    return list(await conn.fetch(q("rotation_credentials")))


async def replace_credentials(
    conn: asyncpg.Connection, *, connection_id: str, credentials: bytes, replaced: bytes
) -> bool:
    """Store ``credentials`` only if the row still holds ``replaced``; True if it did."""
    done = await conn.execute(
        q("rotation_credentials_update"), connection_id, credentials, replaced
    )
    return str(done).endswith(" 1")
