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
from connector.diff import canonical_json
from connector.store import deliveries, events_table

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
    new_ids = await events_table.insert(
        conn,
        flow_name=flow.name,
        connection_id=flow.trigger.connection,
        trigger_type=flow.trigger.type,
        source=source,
        ids=[e.id for e in events],
        item_keys=[e.item_key for e in events],
        payloads=[canonical_json(e.payload) for e in events],
        occurred_at=[e.occurred_at for e in events],
    )
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
    await deliveries.insert(
        conn,
        flow_name=flow.name,
        ids=ids,
        event_ids=event_ids,
        action_indexes=indexes,
        action_types=types,
        connection_ids=connections,
    )
    return len(new_ids)
