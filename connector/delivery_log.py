"""The delivery log as users read it: list deliveries, show an event, replay dead ones.

Replay puts a delivery back to ``pending`` under the same id (so receivers can still drop
repeats) with a fresh retry schedule; only ``dead`` deliveries can be replayed, so an action
that already succeeded is never run again by a replay.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from connector.errors import ConfigError
from connector.store import deliveries, events_table

STATES = ("pending", "running", "delivered", "dead")
# The shortest id prefix taken on the command line; shorter ones match too much, too soon.
MIN_PREFIX = 8
_ID_CHARS = re.compile(r"[0-9a-f-]+")


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


_IDS_BY_PREFIX = {"event": events_table.ids_by_prefix, "delivery": deliveries.ids_by_prefix}


class AmbiguousId(ConfigError):
    """An id prefix that matches more than one row: give more of it."""


async def resolve_id(conn: asyncpg.Connection, kind: str, given: str) -> str | None:
    """The full id of the one ``kind`` (``event`` or ``delivery``) that ``given`` starts.

    ``given`` itself when it is shorter than :data:`MIN_PREFIX` or is no hex id (it may
    still match exactly); None when no id starts with it; :class:`AmbiguousId` when more
    than one does.
    """
    text = given.strip().lower()
    if len(text) < MIN_PREFIX or not _ID_CHARS.fullmatch(text):
        return given
    rows = await _IDS_BY_PREFIX[kind](conn, prefix=text)
    if len(rows) > 1 and text not in rows:
        shown = ", ".join(row[:20] + "…" for row in rows[:2])
        raise AmbiguousId(
            f"{kind} id prefix {given!r} is ambiguous: it matches {shown}"
            f"{' and more' if len(rows) > 2 else ''}; give more characters"
        )
    if text in rows:
        return text
    return rows[0] if rows else None


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
    if event_id is not None:
        # An unknown event has no deliveries; a prefix stands for the one event it starts.
        event_id = await resolve_id(conn, "event", event_id) or event_id
    rows = await deliveries.recent(
        conn, flow_name=flow, state=state, since=since, event_id=event_id, limit=limit
    )
    return [_row(r) for r in rows]


async def show_event(conn: asyncpg.Connection, event_id: str) -> dict[str, Any] | None:
    """The event (``event_id`` may be a unique prefix), its payload, and every attempt."""
    found = await resolve_id(conn, "event", event_id)
    if found is None:
        return None
    event_id = found
    event = await events_table.get(conn, event_id=event_id)
    if event is None:
        return None
    shown = _row(event)
    attempts: dict[str, list[dict[str, Any]]] = {}
    for attempt in await deliveries.attempts_of_event(conn, event_id=event_id):
        row = _row(attempt)
        attempts.setdefault(row.pop("delivery_id"), []).append(row)
    of_event = []
    for delivery in await deliveries.of_event(conn, event_id=event_id):
        row = _row(delivery)
        row["attempts"] = attempts.get(row["id"], [])
        of_event.append(row)
    shown["deliveries"] = of_event
    return shown


@dataclass(frozen=True)
class Replayed:
    id: str
    event_id: str
    flow_name: str


async def replay_delivery(conn: asyncpg.Connection, delivery_id: str, now: datetime) -> Replayed:
    """Replay one dead delivery (``delivery_id`` may be a unique prefix), or say why not."""
    found = await resolve_id(conn, "delivery", delivery_id)
    if found is None:
        raise NothingToReplay(f"no delivery {delivery_id}")
    try:
        did = uuid.UUID(found)
    except ValueError:
        raise NothingToReplay(
            f"{delivery_id!r} is not a delivery id (a UUID, or {MIN_PREFIX}+ of its characters)"
        ) from None
    async with conn.transaction():
        row = await deliveries.replay(conn, delivery_id=did, now=now)
        if row is None:
            current = await deliveries.get(conn, delivery_id=did)
            if current is None:
                raise NothingToReplay(f"no delivery {delivery_id}")
            state = current["state"]
            if state == "delivered":
                raise NothingToReplay(
                    f"delivery {delivery_id} was already delivered; it is not run again"
                )
            raise NothingToReplay(f"delivery {delivery_id} is {state}; only dead ones replay")
        await deliveries.wake(conn)
    return Replayed(str(row["id"]), row["event_id"], row["flow_name"])


async def replay_dead(
    conn: asyncpg.Connection, flow: str, now: datetime, since: datetime | None = None
) -> list[Replayed]:
    """Replay every dead delivery of a flow (that died at or after ``since``)."""
    async with conn.transaction():
        rows = await deliveries.replay_dead(conn, flow_name=flow, now=now, since=since)
        if rows:
            await deliveries.wake(conn)
    return [Replayed(str(r["id"]), r["event_id"], r["flow_name"]) for r in rows]
