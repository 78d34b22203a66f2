"""The ``deliveries`` and ``delivery_attempts`` tables: one row per event and action, and
one per try of it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
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


async def claim(
    conn: asyncpg.Connection,
    *,
    owner: str,
    now: datetime,
    lease_expires_at: datetime,
    limit: int,
    flow_names: Sequence[str],
    max_running: Sequence[int],
    ordered: Sequence[bool],
) -> list[asyncpg.Record]:
    """Lease up to ``limit`` due deliveries to ``owner``, with their events; in a transaction.

    Two statements, in this order: the advisory lock that serialises claims (so that each
    flow's limit of running deliveries and its order hold across workers; it is held until
    the caller's transaction ends), then the claim. ``max_running`` and ``ordered`` go with
    ``flow_names``, one per flow.
    """
    await conn.execute(q("dispatch_claim_lock"))
    return list(
        await conn.fetch(
            q("dispatch_claim"),
            owner,
            now,
            lease_expires_at,
            limit,
            list(flow_names),
            list(max_running),
            list(ordered),
        )
    )


@dataclass(frozen=True, slots=True)
class Finished:
    """One attempt's end, as written: the delivery's new state and its attempt row."""

    id: uuid.UUID
    attempt: int
    # The delivery's new state: ``delivered``, ``pending`` (due at ``next_attempt_at``), ``dead``.
    state: str
    next_attempt_at: datetime | None
    summary: str | None
    error: str | None
    started_at: datetime
    duration_ms: int
    # The attempt row's outcome: ``delivered``, ``retry`` or ``dead``.
    outcome: str
    status_code: int | None
    detail: str | None


async def finish(
    conn: asyncpg.Connection, *, finished: Sequence[Finished], now: datetime
) -> set[uuid.UUID]:
    """Finish many attempts in one statement; returns the ids that were still running them.

    A delivery is finished, and its attempt written down, only where its row still holds
    that attempt in ``running``: a worker that lost its lease finishes nothing.
    """
    rows = await conn.fetch(
        q("dispatch_finish"),
        [f.id for f in finished],
        [f.attempt for f in finished],
        [f.state for f in finished],
        [f.next_attempt_at for f in finished],
        [f.summary for f in finished],
        [f.error for f in finished],
        [f.started_at for f in finished],
        [f.duration_ms for f in finished],
        [f.outcome for f in finished],
        [f.status_code for f in finished],
        [f.detail for f in finished],
        now,
    )
    return {row["id"] for row in rows}


async def rescue_expired(conn: asyncpg.Connection, *, now: datetime) -> list[asyncpg.Record]:
    """Running deliveries whose lease ran out back to pending, each lost attempt written down.

    Returns id, attempt and flow_name of each.
    """
    return list(await conn.fetch(q("dispatch_rescue_expired"), now))


async def count_dead(conn: asyncpg.Connection) -> int:
    """How many deliveries are dead, of every flow."""
    return int(await conn.fetchval(q("dispatch_count_dead")))
