"""A watermark poll: new items above a cursor that only moves up, time- or id-ordered.

How a first run starts (``start: now | all | <time>``) and which items a capped one keeps
are :mod:`connector.poll_policy`'s decisions; this reads, numbers the events and commits
them with the new cursor in one transaction (or, when nothing moved, commits nothing).
"""

from __future__ import annotations

import time

from connector import leases
from connector import poll_policy as policy
from connector.diff import Watermark, WatermarkTracker, event_id
from connector.events import NewEvent, record_events
from connector.poll_context import (
    PollContext,
    PollResult,
    insert_poll_run,
    record_quiet,
    save_state,
)
from connector.request_count import RequestCount


async def poll_watermark(run: PollContext, sent: RequestCount) -> PollResult:
    """Read above the cursor (less the overlap), record what is new, move the cursor."""
    flow, trigger = run.flow, run.trigger
    cursor = Watermark.from_json(run.previous_cursor)
    begin = policy.watermark_start(
        fresh=run.fresh,
        start=flow.start,
        time_ordered=trigger.time_ordered,
        started=run.started,
        trigger=trigger.key,
    )
    if begin.position is not None:
        cursor = Watermark(position=begin.position)
    emit, capped, cap = begin.emit, begin.capped, begin.cap
    tracker = WatermarkTracker(cursor, trigger.overlap, cap)
    found: list[policy.Found] = []
    new_count = 0
    async for item in trigger.poll(run.client, tracker.since):
        await run.heartbeat()
        if run.progress is not None:
            run.progress.advance(sent.value, tracker.items_seen + 1)
        position = trigger.position_of(item)
        if not tracker.offer(trigger.key_of(item), position) or not emit:
            continue
        if not trigger.wants("new", trigger.payload_of(item)):
            continue
        new_count += 1
        policy.keep(
            found, (position, new_count, item), capped=capped, limit=flow.max_first_run_events
        )
    fetched = time.monotonic()
    step = tracker.finish()
    if step.cursor.position is None and trigger.time_ordered:
        # Nothing seen yet: start from now, never from the beginning of time.
        step.cursor.position = cap
    events = []
    for item in policy.in_order(found):
        key = trigger.key_of(item)
        events.append(
            NewEvent(
                id=event_id(flow.name, trigger.key, key, policy.new_label(run.account)),
                item_key=key,
                payload=trigger.payload_of(item),
                occurred_at=trigger.occurred_at(item),
            )
        )
    requests = sent.value
    cursor_json = step.cursor.to_json()
    if policy.quiet_watermark(
        fresh=run.fresh,
        last_error=run.last_error,
        events=len(events),
        cursor=cursor_json,
        previous=run.previous_cursor,
    ):
        await record_quiet(run, requests, tracker.items_seen)
        return PollResult(
            status="ok",
            requests=requests,
            items_seen=tracker.items_seen,
            cursor=cursor_json,
            fetch_ms=round((fetched - run.t0) * 1000),
            diff_ms=run.ms_since(fetched),
        )
    await run.connect()
    async with run.conn.transaction():
        await leases.check_for_commit(run.conn, run.resource, run.worker, run.clock())
        created = await record_events(run.conn, flow, events)
        await save_state(run, step.cursor.to_json())
        await insert_poll_run(run, requests, tracker.items_seen, created, None)
    return PollResult(
        status="ok",
        requests=requests,
        items_seen=tracker.items_seen,
        events_created=created,
        held_back=policy.held_back(new_count, len(found), capped=capped),
        baseline=run.fresh,
        cursor=step.cursor.to_json(),
        fetch_ms=round((fetched - run.t0) * 1000),
        diff_ms=run.ms_since(fetched),
    )
