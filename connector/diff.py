"""Finding what changed: stable event ids, fingerprints, the watermark and the snapshot diff.

Watermark: the cursor is the highest ``(position, key)`` seen, where a position is a number
(an id, or a timestamp in epoch seconds). Each poll asks from ``position - overlap`` and keeps,
beside the position, the keys seen inside that overlap window, so an item that shows up late
(with a position already passed) is still emitted once, and one seen before is never emitted
again. The position is capped at the poll's start time for time-ordered triggers, so a clock
ahead of ours cannot make the cursor skip items that are yet to appear.

Snapshot: the whole list is streamed as ``(key, fingerprint, payload)`` rows into a temporary
table with COPY, a page at a time; added, removed and changed keys come out of one full join
against ``snapshot_items`` in SQL, and only those deltas are written back. Python holds at
most one COPY batch, never the list (the engine keeps a list that fits in one batch in memory
until its commit, so that a poll waiting for the API holds no database connection).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg

from connector.store import events_table, snapshot_items

ChangeKind = Literal["new", "added", "removed", "changed"]
_SEP = "\x1f"


def event_id(flow: str, trigger: str, item_key: str, change: str) -> str:
    """The stable id of one change: the same change seen twice is the same event."""
    raw = _SEP.join((flow, trigger, item_key, change)).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()


def change_label(kind: str, fingerprint: str | None, occurrence: int) -> str:
    """The change part of a snapshot event's id: its kind, new fingerprint and occurrence.

    ``occurrence`` is how many events the flow already holds for the item, so a subscriber
    who joins, leaves and joins again makes two distinct "added" events, while the same
    change seen twice (a retried poll, or a webhook then a poll) makes one.
    """
    return f"{kind}:{fingerprint or ''}:{occurrence}"


async def snapshot_event_id(
    conn: asyncpg.Connection,
    flow: str,
    trigger: str,
    item_key: str,
    kind: str,
    fingerprint: str | None = None,
) -> str:
    """The id a poll would give this snapshot change now.

    Whoever records such an event outside a poll must also move the item in the flow's
    snapshot, so that the next poll does not see it again (see connector.record_changes).
    """
    counts = await events_table.counts_for_keys(conn, flow_name=flow, item_keys=[item_key])
    occurrence = counts.get(item_key, 0)
    return event_id(flow, trigger, item_key, change_label(kind, fingerprint, occurrence))


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def fingerprint(item: Mapping[str, Any], fields: Iterable[str]) -> str:
    """A hash of the watched fields of one item; an absent field counts as null."""
    watched = {name: item.get(name) for name in fields}
    return hashlib.blake2b(canonical_json(watched).encode("utf-8"), digest_size=12).hexdigest()


# -- watermark -----------------------------------------------------------------------------


@dataclass
class Watermark:
    """The highest position seen, and the keys seen within ``overlap`` below it."""

    position: float | None = None
    seen: dict[str, float] = field(default_factory=dict)

    def since(self, overlap: float) -> float | None:
        """Where the next query starts: the position minus the overlap window."""
        return None if self.position is None else self.position - overlap

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "seen": self.seen}

    @classmethod
    def from_json(cls, data: Any) -> Watermark:
        if not isinstance(data, dict):
            return cls()
        position = data.get("position")
        seen = data.get("seen") or {}
        return cls(
            position=None if position is None else float(position),
            seen={str(k): float(v) for k, v in seen.items()},
        )


@dataclass
class WatermarkStep:
    """What one poll found: the keys to emit and the cursor to store with them."""

    new_keys: list[str]
    cursor: Watermark


class WatermarkTracker:
    """Feeds one poll's items through a watermark without holding more than the window."""

    def __init__(self, previous: Watermark, overlap: float, cap: float | None) -> None:
        self.previous = previous
        self.overlap = overlap
        self.cap = cap
        self.since = previous.since(overlap)
        self.highest = previous.position
        self.seen = dict(previous.seen)
        self.new_keys: list[str] = []
        self.items_seen = 0

    def offer(self, key: str, position: float) -> bool:
        """Record one item; True when it is new (never seen, and inside the window)."""
        self.items_seen += 1
        if self.since is not None and position < self.since:
            # Older than the window: handled by an earlier poll (or too late to tell).
            return False
        if key in self.seen:
            return False
        self.seen[key] = position
        self.new_keys.append(key)
        if self.highest is None or position > self.highest:
            self.highest = position
        return True

    def finish(self) -> WatermarkStep:
        position = self.highest
        if position is not None and self.cap is not None and position > self.cap:
            position = self.cap
        if self.previous.position is not None and (
            position is None or position < self.previous.position
        ):
            position = self.previous.position
        floor = None if position is None else position - self.overlap
        # Keys at or above the floor of the next window must be remembered; anything at or
        # above the cursor itself is kept too (items dated after the cap).
        seen = {k: p for k, p in self.seen.items() if floor is None or p >= floor}
        return WatermarkStep(self.new_keys, Watermark(position, seen))


def apply_watermark(
    previous: Watermark, items: Iterable[tuple[str, float]], overlap: float, cap: float | None
) -> WatermarkStep:
    """Run a batch of ``(key, position)`` items through the watermark (for tests and tools)."""
    tracker = WatermarkTracker(previous, overlap, cap)
    for key, position in items:
        tracker.offer(key, position)
    return tracker.finish()


# -- snapshot ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delta:
    """One row of a snapshot diff."""

    kind: Literal["added", "removed", "changed"]
    item_key: str
    fingerprint: str | None
    previous: str | None
    payload: dict[str, Any] | None


class SnapshotLoader:
    """Streams one poll's list into a session-local temporary table, a page at a time."""

    def __init__(self, conn: asyncpg.Connection, page_size: int = 5000) -> None:
        self.conn = conn
        self.page_size = page_size
        self.rows: list[tuple[str, str, str | None]] = []
        self.count = 0

    async def open(self) -> None:
        await snapshot_items.open_incoming(self.conn)

    async def add(self, key: str, fp: str, payload: str | None) -> None:
        self.rows.append((key, fp, payload))
        self.count += 1
        if len(self.rows) >= self.page_size:
            await self.flush()

    async def flush(self) -> None:
        if self.rows:
            await snapshot_items.copy_incoming(self.conn, rows=self.rows)
            self.rows = []

    async def close(self) -> None:
        await self.flush()
        # Temporary tables are never auto-analysed; without statistics the planner picks a
        # nested loop for the full join, which is hopeless at a million rows.
        await snapshot_items.analyze_incoming(self.conn)

    async def discard(self) -> None:
        self.rows = []
        await snapshot_items.drop_incoming(self.conn)


class ListDigest:
    """A running hash of a list's ``(key, fingerprint)`` rows, in the order they arrive.

    Stored beside the snapshot it produced: the next poll that reads the same rows in the
    same order has found no change, and needs no diff. Any other order or row only costs a
    diff, which then finds what (if anything) changed.
    """

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=16)

    def add(self, key: str, fp: str) -> None:
        # Lengths first, so that no two different lists can run into the same bytes.
        self._hash.update(f"{len(key)}:{key}{len(fp)}:{fp}".encode())

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def as_stored(payload: Any) -> dict[str, Any] | None:
    """A payload as it reads back from the database (canonical JSON, then parsed)."""
    if payload is None:
        return None
    loaded = json.loads(canonical_json(payload))
    return loaded if isinstance(loaded, dict) else {"value": loaded}


def diff_rows(
    incoming: Mapping[str, tuple[str, Any]],
    stored: Mapping[str, str],
    payload_of: Callable[[Any], Any] | None = None,
) -> list[Delta]:
    """The deltas between a list held in memory and the stored snapshot, in key order.

    ``incoming`` maps each key to its fingerprint and payload (or, with ``payload_of``, to
    the item its payload is made of), ``stored`` each key to its stored fingerprint. Only
    the deltas' payloads are made and serialised (as the SQL diff's are).
    """
    deltas: list[Delta] = []
    for key, (fp, payload) in incoming.items():
        previous = stored.get(key)
        if previous != fp:
            kind: Literal["added", "changed"] = "added" if previous is None else "changed"
            if payload_of is not None:
                payload = payload_of(payload)
            deltas.append(Delta(kind, key, fp, previous, as_stored(payload)))
    deltas += [Delta("removed", k, None, fp, None) for k, fp in stored.items() if k not in incoming]
    deltas.sort(key=lambda d: d.item_key)
    return deltas


async def snapshot_baseline(conn: asyncpg.Connection, flow: str) -> int:
    """Replace the stored snapshot by the incoming list (a first run or a new baseline)."""
    await snapshot_items.clear(conn, flow_name=flow)
    return await snapshot_items.insert_incoming(conn, flow_name=flow)


async def snapshot_diff(conn: asyncpg.Connection, flow: str) -> int:
    """Compute the delta into ``snapshot_delta`` and apply it; returns the number of rows.

    Must run inside the transaction that also records the events: the snapshot moves only
    together with them.
    """
    found = await snapshot_items.fill_delta(conn, flow_name=flow)
    await snapshot_items.apply_delta(conn, flow_name=flow)
    return found


def _delta(record: asyncpg.Record) -> Delta:
    payload = record["payload"]
    return Delta(
        kind=record["kind"],
        item_key=record["item_key"],
        fingerprint=record["fingerprint"],
        previous=record["previous"],
        payload=None if payload is None else json.loads(payload),
    )


async def iter_deltas(conn: asyncpg.Connection, batch: int = 1000) -> AsyncIterator[list[Delta]]:
    """Yield the delta rows in key order, a batch at a time (inside the diff's transaction)."""
    after = ""
    while True:
        rows = await snapshot_items.delta_page(conn, after=after, limit=batch)
        if not rows:
            return
        yield [_delta(r) for r in rows]
        after = rows[-1]["item_key"]


def first_run_keys(items: Sequence[tuple[str, Any]], limit: int, order: str | None) -> list[str]:
    """The keys ``start: all`` emits from a list held in memory, oldest first.

    The same choice as ``first_incoming`` makes in SQL: the newest ``limit`` by the numeric
    payload field ``order``; without one (or for rows where it is not a number), the first
    as the API listed them.
    """

    def rank(payload: Any) -> float | None:
        value = payload.get(order) if order and isinstance(payload, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    ranked = [(rank(payload), seq, key) for seq, (key, payload) in enumerate(items)]
    # Newest first by rank (rows without one last), then as listed.
    chosen = sorted(ranked, key=lambda r: (r[0] is None, -(r[0] or 0.0), r[1]))[:limit]
    chosen.sort(key=lambda r: (r[0] is not None, r[0] or 0.0, r[1]))
    return [key for _, _, key in chosen]


async def first_incoming(
    conn: asyncpg.Connection, limit: int, order: str | None = None
) -> list[Delta]:
    """Up to ``limit`` rows of the incoming list as ``added`` deltas (for ``start: all``).

    The newest by the payload field ``order``; without one, the first as the API listed them.
    """
    rows = await snapshot_items.first_incoming(conn, limit=limit, order=order)
    return [_delta(r) for r in rows]
