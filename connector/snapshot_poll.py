"""A snapshot or fingerprint poll: the whole list, diffed against the stored snapshot.

A list that fits in one batch is diffed in memory; a longer one streams into a temporary
table and is diffed in SQL. Either way the events, the snapshot's new rows and the cursor
(with the list's digest, so that an unchanged list is recognised next time without a diff)
are committed in one transaction.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import Any

from connector import leases
from connector import poll_policy as policy
from connector.db.queries import q
from connector.diff import (
    Delta,
    ListDigest,
    SnapshotLoader,
    as_stored,
    canonical_json,
    change_label,
    diff_rows,
    event_id,
    first_incoming,
    first_run_keys,
    iter_deltas,
    snapshot_baseline,
    snapshot_diff,
)
from connector.events import NewEvent, record_events
from connector.plugins import Trigger
from connector.poll_context import (
    PollContext,
    PollResult,
    insert_poll_run,
    record_quiet,
    save_state,
)
from connector.request_count import RequestCount


async def poll_snapshot(run: PollContext, sent: RequestCount) -> PollResult:
    """Read the whole list, diff it against the snapshot, record the changes it wants."""
    trigger = run.trigger
    loader: SnapshotLoader | None = None
    # A list that fits in one COPY batch is kept in memory, needs no database connection
    # until the commit, and is diffed in memory; a longer one streams into the temporary
    # table from its first batch, so Python never holds more than one batch of any list.
    # Payloads stay objects until a row proves to be a change: most polls change nothing.
    pending: list[Row] = []
    digest = ListDigest()
    count = 0
    try:
        async for item in trigger.poll(run.client, None):
            await run.heartbeat()
            key, fp = trigger.key_of(item), trigger.fingerprint_of(item)
            digest.add(key, fp)
            count += 1
            if run.progress is not None:
                run.progress.advance(sent.value, count)
            payload = trigger.payload_of(item)
            if loader is not None:
                await loader.add(key, fp, canonical_json(payload))
                continue
            pending.append((key, fp, payload))
            if len(pending) >= SNAPSHOT_BATCH:
                loader = await _open_loader(run, pending)
        fetched = time.monotonic()
        requests = sent.value
        if policy.quiet_snapshot(
            fresh=run.fresh,
            last_error=run.last_error,
            previous=run.previous_cursor,
            digest=digest.hexdigest(),
        ):
            # The same rows in the same order as the snapshot holds: nothing to diff.
            await record_quiet(run, requests, count)
            return PollResult(
                status="ok",
                requests=requests,
                items_seen=count,
                cursor=run.previous_cursor,
                fetch_ms=round((fetched - run.t0) * 1000),
                diff_ms=run.ms_since(fetched),
            )
        if loader is None:
            await _enrich_ahead(run, pending)
        else:
            await loader.close()
        await run.connect()
        held_back = 0
        async with run.conn.transaction():
            await leases.check_for_commit(run.conn, run.resource, run.worker, run.clock())
            done = None if loader is not None else await _commit_in_memory(run, pending, count)
            if done is None:
                if loader is None:
                    # The stored snapshot is too long to hold: diff it in SQL after all.
                    loader = await _open_loader(run, pending)
                    await loader.close()
                done = await _commit_in_sql(run, loader)
            created, held_back = done
            cursor: dict[str, Any] = {"items": count, "at": run.started.isoformat()}
            if not run.restored:
                cursor["digest"] = digest.hexdigest()
            await save_state(run, cursor)
            requests = sent.value
            await insert_poll_run(run, requests, count, created, None)
        diff_ms = run.ms_since(fetched)
    finally:
        # Drop the rows a large list leaves behind on this pooled connection; a connection
        # too broken for that is dropped by the pool, and must not hide the first error.
        if loader is not None:
            with contextlib.suppress(Exception):
                await loader.discard()
    return PollResult(
        status="ok",
        requests=requests,
        items_seen=count,
        events_created=created,
        held_back=held_back,
        baseline=run.fresh,
        cursor=cursor,
        fetch_ms=round((fetched - run.t0) * 1000),
        diff_ms=diff_ms,
    )


SNAPSHOT_BATCH = 5000
# One row of a list held in memory: key, fingerprint, payload (as the trigger made it).
Row = tuple[str, str, Any]
# Events are numbered and written this many deltas at a time.
DELTA_BATCH = 1000


async def _commit_in_sql(run: PollContext, loader: SnapshotLoader) -> tuple[int, int]:
    """Inside the commit: diff the streamed list against the snapshot in SQL and record it."""
    flow, trigger = run.flow, run.trigger
    if run.fresh:
        await snapshot_baseline(run.conn, flow.name)
        if policy.first_run_emits(flow.start, trigger.emits):
            rows = await first_incoming(
                run.conn, flow.max_first_run_events, trigger.first_run_order
            )
            return await _record_deltas(run, rows), max(0, loader.count - len(rows))
        return 0, 0
    await snapshot_diff(run.conn, flow.name)
    created = 0
    async for batch in iter_deltas(run.conn, DELTA_BATCH):
        created += await _record_deltas(run, batch)
    return created, 0


async def _commit_in_memory(
    run: PollContext, rows: list[Row], count: int
) -> tuple[int, int] | None:
    """Inside the commit: diff a short list against the snapshot in memory and record it.

    Writes only the delta, with no temporary table (no DDL in the commit); None when the
    stored snapshot is too long to read, for the SQL diff to take over.
    """
    flow, trigger = run.flow, run.trigger
    incoming: dict[str, tuple[str, Any]] = {}
    for key, fp, payload in rows:
        incoming.setdefault(key, (fp, payload))
    if run.fresh:
        await run.conn.execute(q("snapshot_clear"), flow.name)
        await _upsert_snapshot(run, [(k, fp) for k, (fp, _) in incoming.items()])
        if policy.first_run_emits(flow.start, trigger.emits):
            first = first_run_keys(
                [(k, payload) for k, (_, payload) in incoming.items()],
                flow.max_first_run_events,
                trigger.first_run_order,
            )
            deltas = [_added(k, *incoming[k]) for k in first]
            return await _record_deltas(run, deltas), max(0, count - len(deltas))
        return 0, 0
    stored = await run.conn.fetch(q("snapshot_fingerprints"), flow.name, SNAPSHOT_BATCH + 1)
    if len(stored) > SNAPSHOT_BATCH:
        return None
    deltas = diff_rows(incoming, {r["item_key"]: r["fingerprint"] for r in stored})
    removed = [d.item_key for d in deltas if d.kind == "removed"]
    if removed:
        await run.conn.execute(q("snapshot_remove_keys"), flow.name, removed)
    await _upsert_snapshot(
        run, [(d.item_key, d.fingerprint) for d in deltas if d.fingerprint is not None]
    )
    created = 0
    for start in range(0, len(deltas), DELTA_BATCH):
        created += await _record_deltas(run, deltas[start : start + DELTA_BATCH])
    return created, 0


def _added(key: str, fp: str, payload: Any) -> Delta:
    return Delta("added", key, fp, None, as_stored(payload))


async def _upsert_snapshot(run: PollContext, rows: list[tuple[str, str]]) -> None:
    if rows:
        await run.conn.execute(
            q("snapshot_upsert_keys"), run.flow.name, [k for k, _ in rows], [f for _, f in rows]
        )


async def _open_loader(run: PollContext, rows: list[Row]) -> SnapshotLoader:
    loader = SnapshotLoader(await run.connect(), page_size=SNAPSHOT_BATCH)
    await loader.open()
    for key, fp, payload in rows:
        await loader.add(key, fp, canonical_json(payload))
    rows.clear()
    return loader


async def _enrich_ahead(run: PollContext, rows: list[Row]) -> None:
    """Make a short list's enrichment calls before the commit, holding no database connection.

    The diff is worked out in memory against the stored fingerprints; the commit's diff
    then uses these answers, and calls the API itself only for a change it finds that this
    did not (a webhook that moved the snapshot in between).
    """
    trigger = run.trigger
    if not trigger.enriches or run.fresh:
        return
    async with run.pool.acquire() as conn:
        stored = await conn.fetch(q("snapshot_fingerprints"), run.flow.name, SNAPSHOT_BATCH + 1)
    if len(stored) > SNAPSHOT_BATCH:
        return
    incoming: dict[str, tuple[str, Any]] = {}
    for key, fp, payload in rows:
        incoming.setdefault(key, (fp, payload))
    deltas = diff_rows(incoming, {r["item_key"]: r["fingerprint"] for r in stored})
    for delta in deltas:
        wanted = _wanted_payload(trigger, delta)
        if wanted is not None and _enrich_key(delta, wanted) not in run.enriched:
            answer = await trigger.enrich(run.client, delta.kind, wanted)
            run.enriched[_enrich_key(delta, wanted)] = answer


def _enrich_key(delta: Delta, payload: dict[str, Any]) -> tuple[str, ...]:
    return (
        delta.kind,
        delta.item_key,
        delta.fingerprint or "",
        delta.previous or "",
        canonical_json(payload),
    )


def _wanted_payload(trigger: Trigger, delta: Delta) -> dict[str, Any] | None:
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


async def _record_deltas(run: PollContext, deltas: Iterable[Delta]) -> int:
    trigger, flow = run.trigger, run.flow
    chosen: list[tuple[Delta, dict[str, Any]]] = []
    # Rows the diff already moved in the snapshot that must go back to where they were.
    restore: list[Delta] = []
    keeps_removed = trigger.keeps_removed
    for delta in deltas:
        if delta.kind not in trigger.emits:
            if delta.kind == "removed" and keeps_removed:
                restore.append(delta)
            continue
        payload = _wanted_payload(trigger, delta)
        if payload is not None:
            if trigger.enriches:
                # A few calls for the few changes found (a sent campaign's statistics, or
                # proof that a subscriber really left); None means it was no change after all.
                # A short list made them before the commit (see _enrich_ahead).
                key = _enrich_key(delta, payload)
                if key in run.enriched:
                    enriched = run.enriched[key]
                else:
                    enriched = await trigger.enrich(run.client, delta.kind, payload)
                if enriched is None:
                    # Not a change after all (the paging missed a row). The snapshot keeps
                    # what it held, so that the change, if it comes later, is still found.
                    restore.append(delta)
                    continue
                payload = enriched
            chosen.append((delta, payload))
    if restore:
        run.restored = True
    await _restore_snapshot(run, restore)
    if not chosen:
        return 0
    # Number the occurrences: joining, leaving and joining again are three events.
    counts = {
        r["item_key"]: r["n"]
        for r in await run.conn.fetch(
            q("event_counts_for_keys"), flow.name, [d.item_key for d, _ in chosen]
        )
    }
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
    return await record_events(run.conn, flow, events)


async def _restore_snapshot(run: PollContext, deltas: list[Delta]) -> None:
    """Put the snapshot rows of these deltas back to their fingerprint before this poll."""
    name = run.flow.name
    kept = [(name, d.item_key, d.previous) for d in deltas if d.previous is not None]
    if kept:
        await run.conn.executemany(q("snapshot_upsert_item"), kept)
    # An "added" row had no fingerprint before: restoring it means forgetting it again.
    gone = [(name, d.item_key) for d in deltas if d.previous is None]
    if gone:
        await run.conn.executemany(q("snapshot_delete_item"), gone)
