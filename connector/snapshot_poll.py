"""A snapshot or fingerprint poll: the whole list, diffed against the stored snapshot.

A list that fits in one batch is diffed in memory; a longer one streams into a temporary
table and is diffed in SQL. Either way the deltas go to
:func:`connector.record_changes.record_changes` (the snapshot's new rows, the events and their
deliveries), which commits them in one transaction with the cursor (and the list's digest, so
that an unchanged list is recognised next time without a diff).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from connector import leases
from connector import poll_policy as policy
from connector.diff import (
    Delta,
    ListDigest,
    SnapshotLoader,
    as_stored,
    canonical_json,
    diff_rows,
    first_incoming,
    first_run_keys,
    iter_deltas,
    snapshot_baseline,
    snapshot_diff,
)
from connector.plugins import Item
from connector.poll_context import (
    PollContext,
    PollResult,
    insert_poll_run,
    record_quiet,
    save_state,
)
from connector.record_changes import DELTA_BATCH, record_changes, wanted_payload
from connector.request_count import RequestCount
from connector.store import snapshot_items


async def poll_snapshot(run: PollContext, sent: RequestCount) -> PollResult:
    """Read the whole list, diff it against the snapshot, record the changes it wants."""
    trigger = run.trigger
    loader: SnapshotLoader | None = None
    # A list that fits in one COPY batch is kept in memory, needs no database connection
    # until the commit, and is diffed in memory; a longer one streams into the temporary
    # table from its first batch, so Python never holds more than one batch of any list.
    # A short list keeps its rows as read: a payload is made only for a row that proves to
    # be a change, and most polls change nothing.
    pending: list[Row] = []
    digest = ListDigest()
    count = 0
    try:
        async for key, item in trigger.keyed(run.client, None):
            if count % HEARTBEAT_ROWS == 0:
                # Not at every row: the rows of a page come without a wait in between.
                await run.heartbeat()
            fp = trigger.fingerprint_of(item)
            digest.add(key, fp)
            count += 1
            if run.progress is not None:
                run.progress.advance(sent.value, count)
            if loader is not None:
                await loader.add(key, fp, canonical_json(trigger.payload_of(item)))
                continue
            pending.append((key, fp, item))
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
# The lease is renewed (if due) at the first row and every this many rows after it.
HEARTBEAT_ROWS = 100
# One row of a list held in memory: key, fingerprint, the item as the trigger read it.
Row = tuple[str, str, Item]


async def _commit_in_sql(run: PollContext, loader: SnapshotLoader) -> tuple[int, int]:
    """Inside the commit: diff the streamed list against the snapshot in SQL and record it."""
    flow, trigger = run.flow, run.trigger
    if run.fresh:
        await snapshot_baseline(run.conn, flow.name)
        if policy.first_run_emits(flow.start, trigger.emits):
            rows = await first_incoming(
                run.conn, flow.max_first_run_events, trigger.first_run_order
            )
            return await _record(run, rows, moved=True), max(0, loader.count - len(rows))
        return 0, 0
    # The SQL diff moves the snapshot itself.
    await snapshot_diff(run.conn, flow.name)
    created = 0
    async for batch in iter_deltas(run.conn, DELTA_BATCH):
        created += await _record(run, batch, moved=True)
    return created, 0


async def _commit_in_memory(
    run: PollContext, rows: list[Row], count: int
) -> tuple[int, int] | None:
    """Inside the commit: diff a short list against the snapshot in memory and record it.

    Writes only the delta, with no temporary table (no DDL in the commit); None when the
    stored snapshot is too long to read, for the SQL diff to take over.
    """
    flow, trigger = run.flow, run.trigger
    incoming = _by_key(rows)
    if run.fresh:
        await snapshot_items.clear(run.conn, flow_name=flow.name)
        if incoming:
            await snapshot_items.upsert_keys(
                run.conn,
                flow_name=flow.name,
                item_keys=list(incoming),
                fingerprints=[fp for fp, _ in incoming.values()],
            )
        if policy.first_run_emits(flow.start, trigger.emits):
            payloads = {k: trigger.payload_of(item) for k, (_, item) in incoming.items()}
            first = first_run_keys(
                list(payloads.items()), flow.max_first_run_events, trigger.first_run_order
            )
            deltas = [
                Delta("added", k, incoming[k][0], None, as_stored(payloads[k])) for k in first
            ]
            return await _record(run, deltas, moved=True), max(0, count - len(deltas))
        return 0, 0
    stored = await snapshot_items.fingerprints(
        run.conn, flow_name=flow.name, limit=SNAPSHOT_BATCH + 1
    )
    if len(stored) > SNAPSHOT_BATCH:
        return None
    return await _record(run, diff_rows(incoming, stored, trigger.payload_of)), 0


def _by_key(rows: list[Row]) -> dict[str, tuple[str, Item]]:
    """Each key's fingerprint and item, the first a key came with."""
    incoming: dict[str, tuple[str, Item]] = {}
    for key, fp, item in rows:
        incoming.setdefault(key, (fp, item))
    return incoming


async def _record(run: PollContext, deltas: list[Delta], *, moved: bool = False) -> int:
    async def confirm(delta: Delta, payload: dict[str, Any]) -> dict[str, Any] | None:
        # A short list made its calls before the commit (see _enrich_ahead).
        key = _enrich_key(delta, payload)
        if key in run.enriched:
            return run.enriched[key]
        return await run.trigger.enrich(run.client, delta.kind, payload)

    recorded = await record_changes(
        run.conn, run.flow, run.trigger, deltas, source="poll", moved=moved, confirm=confirm
    )
    if recorded.restored:
        run.restored = True
    return recorded.created


async def _open_loader(run: PollContext, rows: list[Row]) -> SnapshotLoader:
    loader = SnapshotLoader(await run.connect(), page_size=SNAPSHOT_BATCH)
    await loader.open()
    payload_of = run.trigger.payload_of
    for key, fp, item in rows:
        await loader.add(key, fp, canonical_json(payload_of(item)))
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
        stored = await snapshot_items.fingerprints(
            conn, flow_name=run.flow.name, limit=SNAPSHOT_BATCH + 1
        )
    if len(stored) > SNAPSHOT_BATCH:
        return
    for delta in diff_rows(_by_key(rows), stored, trigger.payload_of):
        wanted = wanted_payload(trigger, delta)
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
