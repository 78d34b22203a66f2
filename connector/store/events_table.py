"""The ``events`` table: every change a flow has seen, once each."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from connector.db.queries import q


async def insert(
    conn: asyncpg.Connection,
    *,
    flow_name: str,
    connection_id: str | None,
    trigger_type: str,
    source: str,
    ids: Sequence[str],
    item_keys: Sequence[str],
    payloads: Sequence[str],
    occurred_at: Sequence[datetime | None],
) -> list[str]:
    """Insert events (``payloads`` as JSON text); returns the ids that were new."""
    rows = await conn.fetch(
        q("events_insert"),
        flow_name,
        connection_id,
        trigger_type,
        source,
        list(ids),
        list(item_keys),
        list(payloads),
        list(occurred_at),
    )
    return [row["id"] for row in rows]


async def counts_for_keys(
    conn: asyncpg.Connection, *, flow_name: str, item_keys: Sequence[str]
) -> dict[str, int]:
    """How many events the flow holds per item key (keys without any are left out)."""
    rows = await conn.fetch(q("event_counts_for_keys"), flow_name, list(item_keys))
    return {row["item_key"]: row["n"] for row in rows}


async def ids_by_prefix(conn: asyncpg.Connection, *, prefix: str) -> list[str]:
    """Up to three event ids that start with ``prefix`` (which holds no LIKE wildcard)."""
    return [str(row["id"]) for row in await conn.fetch(q("event_ids_by_prefix"), prefix)]


async def get(conn: asyncpg.Connection, *, event_id: str) -> asyncpg.Record | None:
    """The event's row; its payload as the driver returns jsonb."""
    return await conn.fetchrow(q("event_get"), event_id)
