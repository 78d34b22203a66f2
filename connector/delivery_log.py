"""The delivery log as users read it: list deliveries, show an event, replay dead ones.

Replay puts a delivery back to ``pending`` under the same id (so receivers can still drop
repeats) with a fresh retry schedule; only ``dead`` deliveries can be replayed, so an action
that already succeeded is never run again by a replay.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from connector.db.queries import q
from connector.errors import ConfigError

STATES = ("pending", "running", "delivered", "dead")


class NothingToReplay(ConfigError):
    """The named delivery does not exist or is not dead: say why, change nothing."""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _row(record: asyncpg.Record) -> dict[str, Any]:
    return {key: _plain(value) for key, value in record.items()}


async def list_deliveries(
    conn: asyncpg.Connection,
    *,
    flow: str | None = None,
    state: str | None = None,
    since: datetime | None = None,
    event_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first."""
    if state is not None and state not in STATES:
        raise ConfigError(f"unknown status {state!r}; use one of {', '.join(STATES)}")
    rows = await conn.fetch(q("deliveries_list"), flow, state, since, event_id, limit)
    return [_row(r) for r in rows]


async def show_event(conn: asyncpg.Connection, event_id: str) -> dict[str, Any] | None:
    """The event, its payload, and each delivery with every attempt."""
    event = await conn.fetchrow(q("event_get"), event_id)
    if event is None:
        return None
    shown = _row(event)
    payload = shown["payload"]
    shown["payload"] = json.loads(payload) if isinstance(payload, str) else payload
    attempts: dict[str, list[dict[str, Any]]] = {}
    for attempt in await conn.fetch(q("delivery_attempts_for_event"), event_id):
        row = _row(attempt)
        attempts.setdefault(row.pop("delivery_id"), []).append(row)
    deliveries = []
    for delivery in await conn.fetch(q("event_deliveries"), event_id):
        row = _row(delivery)
        row["attempts"] = attempts.get(row["id"], [])
        deliveries.append(row)
    shown["deliveries"] = deliveries
    return shown


@dataclass(frozen=True)
class Replayed:
    id: str
    event_id: str
    flow_name: str


async def replay_delivery(conn: asyncpg.Connection, delivery_id: str, now: datetime) -> Replayed:
    """Replay one dead delivery, or raise :class:`NothingToReplay` saying why not."""
    try:
        did = uuid.UUID(delivery_id)
    except ValueError:
        raise NothingToReplay(f"{delivery_id!r} is not a delivery id (a UUID)") from None
    async with conn.transaction():
        row = await conn.fetchrow(q("replay_delivery"), did, now)
        if row is None:
            current = await conn.fetchrow(q("delivery_get"), did)
            if current is None:
                raise NothingToReplay(f"no delivery {delivery_id}")
            state = current["state"]
            if state == "delivered":
                raise NothingToReplay(
                    f"delivery {delivery_id} was already delivered; it is not run again"
                )
            raise NothingToReplay(f"delivery {delivery_id} is {state}; only dead ones replay")
        await conn.execute(q("deliveries_wake"))
    return Replayed(str(row["id"]), row["event_id"], row["flow_name"])


async def replay_dead(
    conn: asyncpg.Connection, flow: str, now: datetime, since: datetime | None = None
) -> list[Replayed]:
    """Replay every dead delivery of a flow (that died at or after ``since``)."""
    async with conn.transaction():
        rows = await conn.fetch(q("replay_dead_deliveries"), flow, now, since)
        if rows:
            await conn.execute(q("deliveries_wake"))
    return [Replayed(str(r["id"]), r["event_id"], r["flow_name"]) for r in rows]
