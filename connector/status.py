"""The operator's picture of a running installation, read from the database.

``connector status`` prints it and the status page renders it. Each flow has one state:
``paused`` (disabled in the flow file), ``needs_reauth`` (its connection's credentials were
refused), ``failing`` (its last poll failed; the error is kept whole) or ``ok``. Nothing here
holds a secret: error texts pass through the log scrubber before anyone sees them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from connector.config import Flow
from connector.logging import scrub
from connector.progress import PollProgress
from connector.store import status_reads

WINDOW = timedelta(hours=24)
DEAD_SHOWN = 50
STATES = ("ok", "failing", "needs_reauth", "paused")
BAD_STATES = ("failing", "needs_reauth")


@dataclass
class Polling:
    """A poll in progress in this process."""

    pages: int
    items: int
    elapsed_s: float
    items_per_s: float


@dataclass
class FlowStatus:
    name: str
    trigger: str
    connection: str | None
    every_s: float
    state: str
    last_poll_at: datetime | None = None
    last_poll_ms: int | None = None
    last_poll_requests: int | None = None
    last_poll_items: int | None = None
    last_poll_events: int | None = None
    last_poll_worker: str | None = None
    last_ok_at: datetime | None = None
    next_poll_at: datetime | None = None
    # The last successful commit moved the cursor or snapshot: this is how old it is.
    cursor_age_s: float | None = None
    error: str | None = None
    reason: str | None = None
    events_24h: int = 0
    deliveries_24h: dict[str, int] = field(default_factory=dict)
    dead: int = 0
    polling: Polling | None = None


@dataclass
class WorkerStatus:
    worker: str
    connections: list[str]


@dataclass
class DeadDelivery:
    id: str
    flow: str
    action: str
    item_key: str
    event_id: str
    attempts: int
    error: str
    died_at: datetime


@dataclass
class Status:
    at: datetime
    flows: list[FlowStatus]
    workers: list[WorkerStatus]
    dead: list[DeadDelivery]

    @property
    def healthy(self) -> bool:
        """False when any flow is failing or needs its credentials fixed."""
        return not any(f.state in BAD_STATES for f in self.flows)

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = _plain(asdict(self))
        return shown | {"healthy": self.healthy}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _text(value: str | None) -> str | None:
    return None if value is None else scrub(value)


async def gather(
    conn: asyncpg.Connection,
    flows: Iterable[Flow],
    *,
    now: datetime | None = None,
    next_poll: Callable[[str], datetime | None] | None = None,
    in_progress: dict[str, PollProgress] | None = None,
    dead_limit: int = DEAD_SHOWN,
) -> Status:
    """The whole picture for ``flows`` (as the flow file or the running worker has them)."""
    now = now or datetime.now(UTC)
    flows = list(flows)
    names = [f.name for f in flows]
    since = now - WINDOW
    states = await status_reads.flow_states(conn, flow_names=names)
    polls = await status_reads.last_polls(conn, flow_names=names)
    events = await status_reads.events_since(conn, flow_names=names, since=since)
    deliveries = await status_reads.deliveries_since(conn, flow_names=names, since=since)
    dead_counts = await status_reads.dead_counts(conn)
    connection_ids = sorted({f.trigger.connection for f in flows if f.trigger.connection})
    connections = await status_reads.connections(conn, connection_ids=connection_ids)
    in_progress = in_progress or {}
    rows = []
    for flow in flows:
        state_row = states.get(flow.name)
        poll = polls.get(flow.name)
        connection = connections.get(flow.trigger.connection or "")
        row = FlowStatus(
            name=flow.name,
            trigger=flow.trigger.type,
            connection=flow.trigger.connection,
            every_s=flow.every.total_seconds(),
            state="ok",
            events_24h=int(events.get(flow.name, 0)),
            deliveries_24h=deliveries.get(flow.name, {}),
            dead=dead_counts.get(flow.name, 0),
            next_poll_at=next_poll(flow.name) if next_poll and flow.enabled else None,
        )
        if poll is not None and poll["started_at"] is not None:
            row.last_poll_at = poll["finished_at"] or poll["started_at"]
            if poll["finished_at"] is not None:
                row.last_poll_ms = round(
                    (poll["finished_at"] - poll["started_at"]).total_seconds() * 1000
                )
            row.last_poll_requests = poll["requests"]
            row.last_poll_items = poll["items_seen"]
            row.last_poll_events = poll["events_created"]
            row.last_poll_worker = poll["worker"]
        if poll is not None and poll["last_ok_at"] is not None:
            row.last_ok_at = poll["last_ok_at"]
            row.cursor_age_s = max(0.0, (now - poll["last_ok_at"]).total_seconds())
        error = state_row["last_error"] if state_row is not None else None
        if not flow.enabled:
            row.state = "paused"
        elif connection is not None and connection["status"] == "needs_reauth":
            row.state = "needs_reauth"
            row.reason = _text(connection["status_reason"])
            row.error = _text(error)
        elif error:
            row.state = "failing"
            row.error = _text(error)
        progress = in_progress.get(flow.name)
        if progress is not None:
            row.polling = Polling(
                pages=progress.pages,
                items=progress.items,
                elapsed_s=round(progress.elapsed_s, 1),
                items_per_s=round(progress.items_per_s, 1),
            )
        rows.append(row)
    workers = [
        WorkerStatus(worker=worker, connections=owned)
        for worker, owned in await status_reads.workers(conn, now=now)
    ]
    dead = [
        DeadDelivery(
            id=str(r["id"]),
            flow=r["flow_name"],
            action=f"{r['action_index']}:{r['action_type']}",
            item_key=r["item_key"],
            event_id=r["event_id"],
            attempts=r["attempt"],
            error=_text(r["last_error"]) or "",
            died_at=r["updated_at"],
        )
        for r in await status_reads.dead_deliveries(conn, limit=dead_limit)
    ]
    return Status(at=now, flows=rows, workers=workers, dead=dead)
