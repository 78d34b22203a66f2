"""The ``deliveries`` and ``delivery_attempts`` tables: one row per event and action, and
one per try of it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from connector.db.queries import q


async def insert(
    conn: asyncpg.Connection,
    *,
    flow_name: str,
    ids: Sequence[uuid.UUID],
    event_ids: Sequence[str],
    action_indexes: Sequence[int],
    action_types: Sequence[str],
    connection_ids: Sequence[str | None],
) -> None:
    """Insert deliveries; one that exists already is left as it is."""
    await conn.execute(
        q("deliveries_insert"),
        flow_name,
        list(ids),
        list(event_ids),
        list(action_indexes),
        list(action_types),
        list(connection_ids),
    )


async def ids_by_prefix(conn: asyncpg.Connection, *, prefix: str) -> list[str]:
    """Up to three delivery ids that start with ``prefix`` (which holds no LIKE wildcard)."""
    return [str(row["id"]) for row in await conn.fetch(q("delivery_ids_by_prefix"), prefix)]


async def recent(
    conn: asyncpg.Connection,
    *,
    flow_name: str | None,
    state: str | None,
    since: datetime | None,
    event_id: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """The newest deliveries first, with their event's item key and trigger; None: any."""
    return list(await conn.fetch(q("deliveries_list"), flow_name, state, since, event_id, limit))


async def of_event(conn: asyncpg.Connection, *, event_id: str) -> list[asyncpg.Record]:
    """An event's deliveries, by action index."""
    return list(await conn.fetch(q("event_deliveries"), event_id))


async def attempts_of_event(conn: asyncpg.Connection, *, event_id: str) -> list[asyncpg.Record]:
    """Every attempt of an event's deliveries (with its ``delivery_id``), in order."""
    return list(await conn.fetch(q("delivery_attempts_for_event"), event_id))


async def get(conn: asyncpg.Connection, *, delivery_id: uuid.UUID) -> asyncpg.Record | None:
    """id, event_id, flow_name, state and attempt."""
    return await conn.fetchrow(q("delivery_get"), delivery_id)


async def replay(
    conn: asyncpg.Connection, *, delivery_id: uuid.UUID, now: datetime
) -> asyncpg.Record | None:
    """A dead delivery back to pending (id, event_id, flow_name); None if it is not dead."""
    return await conn.fetchrow(q("replay_delivery"), delivery_id, now)


async def replay_dead(
    conn: asyncpg.Connection, *, flow_name: str, now: datetime, since: datetime | None
) -> list[asyncpg.Record]:
    """Every dead delivery of a flow (that died at or after ``since``) back to pending."""
    return list(await conn.fetch(q("replay_dead_deliveries"), flow_name, now, since))


async def wake(conn: asyncpg.Connection) -> None:
    """Tell every dispatcher that deliveries are due (``NOTIFY deliveries_due``)."""
    await conn.execute(q("deliveries_wake"))


async def replay_progress(
    conn: asyncpg.Connection, *, ids: Sequence[uuid.UUID]
) -> tuple[int, int, int]:
    """Of these deliveries: how many were delivered, died again, are still waiting."""
    row = await conn.fetchrow(q("replay_progress"), list(ids))
    return int(row["delivered"]), int(row["dead"]), int(row["waiting"])
