"""Recording events and their deliveries: the one door every event goes through.

Polls and the webhook intake both call :func:`record_events` inside the transaction that
also moves their cursor. An event id is a stable hash (see :func:`connector.diff.event_id`), so
recording the same change twice adds nothing; each new event gets one delivery row per action,
whose id (the idempotency key sent with every attempt) is derived from the event id and the
action's position, so a repeat can never create a second delivery either.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from connector.config import Flow
from connector.db.queries import q
from connector.diff import canonical_json

# Fixed forever: changing it would change every delivery id.
DELIVERY_NAMESPACE = uuid.UUID("6f1c2f4e-3b7a-5d2e-9a41-0c8e5b7d2a10")

Source = Literal["poll", "webhook", "replay"]


@dataclass(frozen=True)
class NewEvent:
    """An event about to be recorded."""

    id: str
    item_key: str
    payload: dict[str, Any]
    occurred_at: datetime | None = None


def delivery_id(event_id: str, action_index: int) -> uuid.UUID:
    """The deterministic id (and idempotency key) of one event's delivery to one action."""
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{event_id}:{action_index}")


async def record_events(
    conn: asyncpg.Connection,
    flow: Flow,
    events: Sequence[NewEvent],
    *,
    source: Source = "poll",
) -> int:
    """Insert new events and their deliveries; returns how many events were new.

    Call it inside a transaction: events, deliveries and the caller's cursor go together.
    """
    if not events:
        return 0
    inserted = await conn.fetch(
        q("events_insert"),
        flow.name,
        flow.trigger.connection,
        flow.trigger.type,
        source,
        [e.id for e in events],
        [e.item_key for e in events],
        [canonical_json(e.payload) for e in events],
        [e.occurred_at for e in events],
    )
    new_ids = [r["id"] for r in inserted]
    if not new_ids:
        return 0
    ids: list[uuid.UUID] = []
    event_ids: list[str] = []
    indexes: list[int] = []
    types: list[str] = []
    connections: list[str | None] = []
    for event in new_ids:
        for index, action in enumerate(flow.actions):
            ids.append(delivery_id(event, index))
            event_ids.append(event)
            indexes.append(index)
            types.append(action.type)
            connections.append(action.connection)
    await conn.execute(
        q("deliveries_insert"), flow.name, ids, event_ids, indexes, types, connections
    )
    return len(new_ids)
