"""The ``oauth_states`` table: one-time states of installs waiting for their OAuth code."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from connector.db.queries import q


async def prune(conn: asyncpg.Connection, *, now: datetime) -> None:
    """Drop the states that expired before ``now``."""
    await conn.execute(q("oauth_state_prune"), now)


async def insert(
    conn: asyncpg.Connection,
    *,
    state: str,
    app: str,
    code_verifier: str,
    redirect_uri: str,
    expires_at: datetime,
    max_pending: int,
) -> bool:
    """Store a new state; False (nothing stored) once the app has ``max_pending`` states."""
    inserted = await conn.fetchval(
        q("oauth_state_insert"), state, app, code_verifier, redirect_uri, expires_at, max_pending
    )
    return inserted is not None


async def take(conn: asyncpg.Connection, *, state: str) -> asyncpg.Record | None:
    """Delete the state and return app, code_verifier, redirect_uri, expires_at (or None)."""
    return await conn.fetchrow(q("oauth_state_take"), state)
