"""The operator's picture, read across tables: flows' states and polls, counts of events and
deliveries, connections, live workers and dead deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from connector.db.queries import q


async def flow_states(
    conn: asyncpg.Connection, *, flow_names: Sequence[str]
) -> dict[str, asyncpg.Record]:
    """Flow name -> its connection_id, trigger_type, baseline_done, last_error, updated_at."""
    rows = await conn.fetch(q("status_flow_states"), list(flow_names))
    return {row["flow_name"]: row for row in rows}


async def last_polls(
    conn: asyncpg.Connection, *, flow_names: Sequence[str]
) -> dict[str, asyncpg.Record]:
    """Flow name -> its latest poll (all nulls if none), and when one last succeeded."""
    rows = await conn.fetch(q("status_last_polls"), list(flow_names))
    return {row["flow_name"]: row for row in rows}


async def events_since(
    conn: asyncpg.Connection, *, flow_names: Sequence[str], since: datetime
) -> dict[str, int]:
    """Flow name -> events recorded at or after ``since`` (flows without any are left out)."""
    rows = await conn.fetch(q("status_events_since"), list(flow_names), since)
    return {row["flow_name"]: int(row["n"]) for row in rows}


async def deliveries_since(
    conn: asyncpg.Connection, *, flow_names: Sequence[str], since: datetime
) -> dict[str, dict[str, int]]:
    """Flow name -> state -> deliveries created at or after ``since``."""
    counts: dict[str, dict[str, int]] = {}
    for row in await conn.fetch(q("status_deliveries_since"), list(flow_names), since):
        counts.setdefault(row["flow_name"], {})[row["state"]] = int(row["n"])
    return counts


async def dead_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Flow name -> its dead deliveries, for every flow that has any."""
    return {row["flow_name"]: int(row["n"]) for row in await conn.fetch(q("status_dead_counts"))}


async def connections(
    conn: asyncpg.Connection, *, connection_ids: Sequence[str]
) -> dict[str, asyncpg.Record]:
    """Connection id -> its status and status_reason."""
    rows = await conn.fetch(q("status_connections"), list(connection_ids))
    return {row["id"]: row for row in rows}


async def workers(conn: asyncpg.Connection, *, now: datetime) -> list[tuple[str, list[str]]]:
    """Each live worker, by id, with the connections it owns."""
    rows = await conn.fetch(q("status_workers"), now)
    return [(row["worker"], list(row["connections"])) for row in rows]


async def dead_deliveries(conn: asyncpg.Connection, *, limit: int) -> list[asyncpg.Record]:
    """The newest dead deliveries with their event's item key, newest first."""
    return list(await conn.fetch(q("status_dead_deliveries"), limit))
