"""Recording a flow's changes: the one way a snapshot delta becomes events, deliveries and state.

A snapshot poll (:mod:`connector.snapshot_poll`, by its in-memory or its SQL diff) and the
webhook intake (:mod:`connector.intake`) both find *deltas*: an item of the flow's list that
was added, changed or removed. Both hand them to :func:`record_changes`, inside the
transaction that holds the connection's poll lease, which

- moves the flow's snapshot (unless the SQL diff moved it already);
- keeps the changes the flow wants: the trigger's ``emits`` and ``wants``, its payloads,
  and for a poll its ``enrich``;
- numbers them (:func:`connector.diff.change_label`), so that one change found by a webhook
  and then by a poll is one event, and records them with one delivery per action
  (:func:`connector.events.record_events`);
- keeps the flow's state true: a snapshot moved outside a poll loses its list digest (a poll
  stores its cursor, with the digest of the list it read, in the same transaction).

A poll's deltas are what a paged list suggests, and offset paging can miss a row: a removal
that a trigger keeping removed rows does not emit is put back, and ``confirm`` (the trigger's
``enrich``) may show that a change was none. A webhook's deltas are the provider's word.

:func:`seen_deltas` is the webhook's diff, one item seen (or gone) against the stored
snapshot, decided by :func:`connector.diff.diff_rows` as a short poll's diff is; and
:func:`has_baseline` its fresh-baseline check, :func:`connector.poll_policy.is_fresh` as the
poll asks it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from connector.diff import Delta, change_label, diff_rows, event_id
from connector.events import NewEvent, Source, record_events
from connector.flow_models import Flow
from connector.plan import FlowPlan
from connector.plugins import Gone, Item, Trigger
from connector.poll_policy import is_fresh, state_key
from connector.store import events_table, flow_states, snapshot_items

# Completes one chosen event's payload (a poll's ``Trigger.enrich``); None: no change after all.
Confirm = Callable[[Delta, dict[str, Any]], Awaitable[dict[str, Any] | None]]
# Events are numbered and written this many deltas at a time.
DELTA_BATCH = 1000


@dataclass(frozen=True)
class Recorded:
    """What :func:`record_changes` did."""

    created: int
    # Snapshot rows were put back as they were: the snapshot is no longer the list just read,
    # so that list's digest must not be stored as the snapshot's.
    restored: bool = False


async def record_changes(
    conn: asyncpg.Connection,
    flow: Flow,
    trigger: Trigger,
    deltas: Sequence[Delta],
    *,
    source: Source,
    moved: bool = False,
    confirm: Confirm | None = None,
) -> Recorded:
    """Move the flow's snapshot by ``deltas`` and record the events and deliveries it wants.

    Call it inside the transaction that proves the poll lease (see the module docstring);
    ``moved`` says the snapshot was moved already (the SQL diff applies its delta itself).
    """
    if not deltas:
        return Recorded(0)
    if not moved:
        await move_snapshot(conn, flow_name=flow.name, deltas=deltas)
    created, restored = 0, False
    for start in range(0, len(deltas), DELTA_BATCH):
        chosen, restore = await choose(
            trigger,
            deltas[start : start + DELTA_BATCH],
            from_list=source == "poll",
            confirm=confirm,
        )
        if restore:
            restored = True
            await _put_back(conn, flow.name, restore)
        created += await _record(conn, flow, trigger, chosen, source)
    if source != "poll":
        # The snapshot now differs from the list its stored digest was taken of.
        await flow_states.forget_digest(conn, flow_name=flow.name)
    return Recorded(created, restored)


async def move_snapshot(
    conn: asyncpg.Connection, *, flow_name: str, deltas: Sequence[Delta]
) -> None:
    """Make the stored snapshot what the deltas say: removed rows out, the others' new
    fingerprints in."""
    removed = [d.item_key for d in deltas if d.kind == "removed"]
    if removed:
        await snapshot_items.remove_keys(conn, flow_name=flow_name, item_keys=removed)
    kept = [d for d in deltas if d.fingerprint is not None]
    if kept:
        await snapshot_items.upsert_keys(
            conn,
            flow_name=flow_name,
            item_keys=[d.item_key for d in kept],
            fingerprints=[d.fingerprint or "" for d in kept],
        )


def wanted_payload(trigger: Trigger, delta: Delta) -> dict[str, Any] | None:
    """The payload of an event for this delta, or None if the flow does not want one."""
    if delta.kind not in trigger.emits:
        return None
    if delta.kind == "removed":
        payload = trigger.removed_payload(delta.item_key)
    else:
        payload = dict(delta.payload or {})
        if delta.kind == "changed":
            payload = trigger.changed_payload(payload, delta.previous)
    return payload if trigger.wants(delta.kind, payload) else None


async def seen_deltas(
    conn: asyncpg.Connection, *, flow_name: str, trigger: Trigger, seen: Item | Gone
) -> list[Delta]:
    """What one item as it is now (or one :class:`Gone`) changes in the flow's snapshot."""
    key = seen.key if isinstance(seen, Gone) else trigger.key_of(seen)
    previous = await snapshot_items.fingerprint(conn, flow_name=flow_name, item_key=key)
    stored = {} if previous is None else {key: previous}
    incoming = {} if isinstance(seen, Gone) else {key: (trigger.fingerprint_of(seen), seen)}
    return diff_rows(incoming, stored, trigger.payload_of)


async def has_baseline(conn: asyncpg.Connection, plan: FlowPlan, *, account: str | None) -> bool:
    """Whether the flow's stored snapshot is a view of the list it watches now.

    Before its first poll a flow has none (nor after its params changed, or its connection
    moved to another account); its baseline poll takes every change in.
    """
    state = await flow_states.baseline(conn, flow_name=plan.name)
    key = state_key(plan.trigger.key, plan.params)
    return not is_fresh(state, key, plan.connection, account)


async def choose(
    trigger: Trigger, deltas: Sequence[Delta], *, from_list: bool, confirm: Confirm | None
) -> tuple[list[tuple[Delta, dict[str, Any]]], list[Delta]]:
    """The deltas the flow makes events of, with their payloads; and the rows to put back."""
    chosen: list[tuple[Delta, dict[str, Any]]] = []
    # Rows the snapshot already moved by that must go back to where they were.
    restore: list[Delta] = []
    for delta in deltas:
        if delta.kind not in trigger.emits:
            if delta.kind == "removed" and trigger.keeps_removed and from_list:
                restore.append(delta)
            continue
        payload = wanted_payload(trigger, delta)
        if payload is None:
            continue
        if trigger.enriches and confirm is not None:
            # A few calls for the few changes found (a sent campaign's statistics, or proof
            # that a subscriber really left); None means it was no change after all.
            enriched = await confirm(delta, payload)
            if enriched is None:
                # Not a change after all (the paging missed a row). The snapshot keeps what
                # it held, so that the change, if it comes later, is still found.
                restore.append(delta)
                continue
            payload = enriched
        chosen.append((delta, payload))
    return chosen, restore


async def _put_back(conn: asyncpg.Connection, flow_name: str, deltas: list[Delta]) -> None:
    """Put the snapshot rows of these deltas back to their fingerprint before the move."""
    kept = [d for d in deltas if d.previous is not None]
    if kept:
        await snapshot_items.upsert_keys(
            conn,
            flow_name=flow_name,
            item_keys=[d.item_key for d in kept],
            fingerprints=[d.previous or "" for d in kept],
        )
    # An "added" row had no fingerprint before: putting it back means forgetting it again.
    gone = [d.item_key for d in deltas if d.previous is None]
    if gone:
        await snapshot_items.remove_keys(conn, flow_name=flow_name, item_keys=gone)


async def _record(
    conn: asyncpg.Connection,
    flow: Flow,
    trigger: Trigger,
    chosen: list[tuple[Delta, dict[str, Any]]],
    source: Source,
) -> int:
    if not chosen:
        return 0
    # Number the occurrences: joining, leaving and joining again are three events.
    counts = await events_table.counts_for_keys(
        conn, flow_name=flow.name, item_keys=[d.item_key for d, _ in chosen]
    )
    events = [
        NewEvent(
            id=event_id(
                flow.name,
                trigger.key,
                delta.item_key,
                change_label(delta.kind, delta.fingerprint, counts.get(delta.item_key, 0)),
            ),
            item_key=delta.item_key,
            payload=payload,
        )
        for delta, payload in chosen
    ]
    return await record_events(conn, flow, events, source=source)
