"""One poll of one flow: lease, poll, diff, and one transaction that makes it all true at once.

Whatever happens between the fetch and the commit, the next poll finds the same changes and
gives them the same event ids: the events, their deliveries, the new cursor (or snapshot) and
the ``poll_runs`` row are written in one transaction, after checking that the connection's
lease is still ours. A poll that fails (or a worker that dies) leaves the state as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg
import structlog

from connector import leases, progress
from connector import poll_policy as policy
from connector.config import Flow
from connector.db.queries import q
from connector.diff import (
    Delta,
    ListDigest,
    SnapshotLoader,
    Watermark,
    WatermarkTracker,
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
from connector.errors import FatalError, RetriableError
from connector.events import NewEvent, record_events
from connector.plugins import ApiClient, PluginParams, Trigger
from connector.poll_runs import PollRunBook, QuietRun, write_quiet_runs
from connector.progress import PollProgress
from connector.request_count import RequestCount, counting
from connector.wall_clock import utc_now

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
DEFAULT_LEASE_TTL = timedelta(minutes=5)


def _json(value: Any) -> Any:
    # asyncpg hands jsonb over as text unless a codec is set on the pool, which we do not own.
    return json.loads(value) if isinstance(value, str) else value


@dataclass
class PollResult:
    """What one poll did (the figures of its ``poll_finished`` line)."""

    status: Literal["ok", "skipped", "failed"]
    requests: int = 0
    items_seen: int = 0
    events_created: int = 0
    held_back: int = 0
    baseline: bool = False
    error: str | None = None
    cursor: Any = None
    # Wall time spent fetching, and in the diff and commit (the transaction), in ms.
    fetch_ms: int = 0
    diff_ms: int = 0


@dataclass
class _Run:
    flow: Flow
    trigger: Trigger
    client: ApiClient
    pool: asyncpg.Pool
    worker: str
    clock: Clock
    lease_ttl: timedelta
    resource: str
    started: datetime
    state_key: str
    # The fingerprint of the account this poll reaches (None: unknown, nothing to compare).
    account: str | None
    fresh: bool
    previous_cursor: Any
    last_error: str | None
    # Where a quiet poll's poll_runs row goes: a worker's book, or (None) straight in.
    runs: PollRunBook | None = None
    # Set when the commit put snapshot rows back: the snapshot then differs from the list
    # just read, so the list's digest must not be stored as the snapshot's.
    restored: bool = field(init=False, default=False)
    renewed_at: datetime = field(init=False)
    t0: float = field(init=False)
    # Taken for the commit (or from the first COPY batch of a long list) and held to the end
    # of the poll; a poll waiting for the API or its rate limiter holds none of the pool's
    # few connections, which other polls need to start and to commit.
    _conn: Any = field(init=False, default=None)
    # Enrichments made before the commit, by (kind, key, fingerprint, previous, payload).
    enriched: dict[tuple[str, ...], dict[str, Any] | None] = field(init=False, default_factory=dict)
    # Pages and items so far, for the status page and poll_progress lines (progress.py).
    progress: PollProgress | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.renewed_at = self.started
        self.t0 = time.monotonic()

    @property
    def conn(self) -> asyncpg.Connection:
        if self._conn is None:
            raise RuntimeError("the poll holds no database connection; await connect() first")
        conn: asyncpg.Connection = self._conn
        return conn

    async def connect(self) -> asyncpg.Connection:
        if self._conn is None:
            self._conn = await self.pool.acquire()
        return self.conn

    async def disconnect(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self.pool.release(conn)

    def ms_since(self, mark: float) -> int:
        return round((time.monotonic() - mark) * 1000)

    async def heartbeat(self) -> None:
        """Renew the lease during long fetches, so a big list can take longer than its TTL."""
        now = self.clock()
        if now - self.renewed_at >= self.lease_ttl / 3:
            if self._conn is not None:
                await leases.renew(self._conn, self.resource, self.worker, now, self.lease_ttl)
            else:
                async with self.pool.acquire() as conn:
                    await leases.renew(conn, self.resource, self.worker, now, self.lease_ttl)
            self.renewed_at = now


class Poller:
    """One worker's polls in progress, and how many of them hold each connection lease.

    Owned by the worker (one per process and event loop): flows sharing a connection in one
    worker share its lease, taken by the first of their polls and given up by the last.
    """

    def __init__(self) -> None:
        # (worker, flow) of each poll in progress.
        self._polling: set[tuple[str, str]] = set()
        # (lease resource, worker) -> how many polls in progress hold that lease.
        self._holds: Counter[tuple[str, str]] = Counter()
        # Taking or giving up a shared lease and counting its holders is one step: a sibling
        # that ends while another is still taking the lease would otherwise see no holder
        # and delete the lease just taken. One lock per lease.
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def holders(self, resource: str, worker: str) -> int:
        """How many polls of ``worker`` hold the lease on ``resource`` now."""
        return self._holds[(resource, worker)]

    async def poll(
        self,
        flow: Flow,
        params: PluginParams,
        *,
        trigger: type[Trigger],
        client: ApiClient,
        pool: asyncpg.Pool,
        worker: str,
        clock: Clock = utc_now,
        lease_ttl: timedelta = DEFAULT_LEASE_TTL,
        account: str | None = None,
        runs: PollRunBook | None = None,
    ) -> PollResult:
        """Poll one flow once and commit what changed; safe to call from any worker at any time.

        ``account`` is the fingerprint of the account ``client`` reaches
        (:mod:`connector.accounts`): state taken under another one is no continuation of
        this one, and the flow starts a new baseline as a new flow would.

        A poll that finds nothing moves no state and commits nothing; its ``poll_runs`` row
        goes to ``runs`` (written with others later) or, without a book, straight in.
        """
        bound = log.bind(flow=flow.name, trigger=trigger.key, worker=worker)
        if (worker, flow.name) in self._polling:
            # The same flow twice at once in one process would number the same change twice.
            bound.info("poll_skipped", reason="already_polling")
            return PollResult(status="skipped")
        self._polling.add((worker, flow.name))
        try:
            return await self._poll_leased(
                flow, params, trigger, client, pool, worker, clock, lease_ttl, account, runs
            )
        finally:
            self._polling.discard((worker, flow.name))

    def _lock(self, hold: tuple[str, str]) -> asyncio.Lock:
        lock = self._locks.get(hold)
        if lock is None:
            lock = self._locks[hold] = asyncio.Lock()
        return lock

    async def _poll_leased(
        self,
        flow: Flow,
        params: PluginParams,
        trigger: type[Trigger],
        client: ApiClient,
        pool: asyncpg.Pool,
        worker: str,
        clock: Clock,
        lease_ttl: timedelta,
        account: str | None,
        runs: PollRunBook | None,
    ) -> PollResult:
        connection = flow.trigger.connection
        resource = leases.connection_resource(connection, flow.name)
        bound = log.bind(flow=flow.name, trigger=trigger.key, connection=connection, worker=worker)
        started = clock()
        hold = (resource, worker)
        # The lease's lock first, then a pooled connection, never the other way round: a poll
        # waiting for its siblings must not sit on a connection that the sibling holding the
        # lock needs to give the lease up (with ten flows a connection, that stalled a worker).
        async with self._lock(hold), pool.acquire() as conn:
            # A sibling flow's poll in this process holds it already (and renews it, and every
            # commit checks it): taking it again would only write the row once more.
            taken = self._holds[hold] > 0 or await leases.acquire(
                conn, resource, worker, started, lease_ttl
            )
            if not taken:
                held = await leases.holder(conn, resource)
                bound.info("poll_skipped", reason="lease_held", holder=held[0] if held else None)
                return PollResult(status="skipped")
            try:
                state = await conn.fetchrow(q("flow_state_get"), flow.name)
            except BaseException:
                if self._holds[hold] == 0:
                    # Taken just now and by no sibling: without a database it lapses alone.
                    with contextlib.suppress(Exception):
                        await leases.release(conn, *hold)
                raise
            self._holds[hold] += 1
        key = policy.state_key(trigger.key, params)
        fresh = policy.is_fresh(state, key, connection, account)
        run = _Run(
            flow=flow,
            trigger=trigger(params, started),
            client=client,
            pool=pool,
            worker=worker,
            clock=clock,
            lease_ttl=lease_ttl,
            resource=resource,
            started=started,
            state_key=key,
            account=account,
            fresh=fresh,
            previous_cursor=None if state is None or fresh else _json(state["cursor"]),
            last_error=None if state is None else state["last_error"],
            runs=runs,
        )
        try:
            return await _poll(run, bound)
        finally:
            try:
                # Given back before the lease's lock is awaited (see above).
                await run.disconnect()
            finally:
                await self._let_go(hold, pool)

    async def _let_go(self, hold: tuple[str, str], pool: asyncpg.Pool) -> None:
        """One poll less under the shared lease; the last one gives the lease up."""
        async with self._lock(hold):
            self._holds[hold] -= 1
            if self._holds[hold] > 0:
                return
            del self._holds[hold]
            # Counted out first: without a database to release it on, the lease lapses alone.
            async with pool.acquire() as conn:
                await leases.release(conn, *hold)


async def poll_flow(
    flow: Flow,
    params: PluginParams,
    *,
    trigger: type[Trigger],
    client: ApiClient,
    pool: asyncpg.Pool,
    worker: str,
    clock: Clock = utc_now,
    lease_ttl: timedelta = DEFAULT_LEASE_TTL,
    account: str | None = None,
    runs: PollRunBook | None = None,
    poller: Poller | None = None,
) -> PollResult:
    """One poll of one flow (see :meth:`Poller.poll`); without ``poller``, one that shares
    no lease and no in-progress mark with any other poll."""
    return await (poller or Poller()).poll(
        flow,
        params,
        trigger=trigger,
        client=client,
        pool=pool,
        worker=worker,
        clock=clock,
        lease_ttl=lease_ttl,
        account=account,
        runs=runs,
    )


async def _poll(run: _Run, bound: Any) -> PollResult:
    run.progress = progress.begin(run.flow.name, run.trigger.key, run.worker)
    try:
        return await _poll_counted(run, bound)
    finally:
        progress.end(run.progress)


async def _poll_counted(run: _Run, bound: Any) -> PollResult:
    # This poll's requests only: the client is shared with the connection's other flows.
    with counting() as sent:
        try:
            if run.trigger.strategy == "watermark":
                result = await _poll_watermark(run, sent)
            else:
                result = await _poll_snapshot(run, sent)
        except (FatalError, RetriableError) as exc:
            result = await _record_failure(run, sent, exc, bound)
        except Exception as exc:
            # A bug or a lost database: still visible in poll_runs (if the database lets us),
            # then raised for the scheduler to report. The state is untouched either way.
            bound.exception("poll_crashed")
            with contextlib.suppress(Exception):
                await _record_failure(run, sent, exc, bound)
            raise
    duration_ms = run.ms_since(run.t0)
    bound.info(
        "poll_finished",
        status=result.status,
        requests=result.requests,
        items_seen=result.items_seen,
        events_created=result.events_created,
        held_back=result.held_back,
        baseline=result.baseline,
        duration_ms=duration_ms,
        fetch_ms=result.fetch_ms,
        diff_ms=result.diff_ms,
        error=result.error,
    )
    if result.held_back:
        bound.info("first_run_held_back", held_back=result.held_back, emitted=result.events_created)
    if result.status == "ok" and run.last_error is not None:
        bound.info("trigger_recovered", previous_error=run.last_error)
    return result


async def _record_failure(run: _Run, sent: RequestCount, exc: Exception, bound: Any) -> PollResult:
    message = f"{type(exc).__name__}: {exc}"
    requests = sent.value
    flow = run.flow
    await run.connect()
    async with run.conn.transaction():
        # A poll that lost its lease writes no state: the flow is another poll's now, or
        # its install was removed under it (and must stay removed).
        if not isinstance(exc, leases.LeaseLost):
            await run.conn.execute(
                q("flow_state_set_error"),
                flow.name,
                flow.trigger.connection,
                run.trigger.key,
                run.state_key,
                message,
            )
        await _insert_poll_run(run, requests, 0, 0, message)
    if message != run.last_error:
        # Once per change of state, not once per poll: a broken flow must not flood the log.
        bound.warning("trigger_failed", error=message, retriable=isinstance(exc, RetriableError))
    return PollResult(status="failed", requests=requests, error=message)


async def _insert_poll_run(
    run: _Run, requests: int, items: int, created: int, error: str | None
) -> None:
    await run.conn.execute(
        q("poll_run_insert"),
        run.flow.name,
        run.flow.trigger.connection,
        run.worker,
        run.started,
        run.clock(),
        requests,
        items,
        created,
        error,
    )


async def _record_quiet(run: _Run, requests: int, items: int) -> None:
    """A poll that found nothing: its poll_runs row is all it writes, and no transaction.

    Nothing it read needs the lease at a commit: the state stays as the last commit left it.
    """
    row = QuietRun(
        flow_name=run.flow.name,
        connection_id=run.flow.trigger.connection,
        started_at=run.started,
        finished_at=run.clock(),
        requests=requests,
        items_seen=items,
    )
    if run.runs is not None:
        run.runs.add(row)
    else:
        await write_quiet_runs(run.pool, run.worker, [row])


async def _save_state(run: _Run, cursor: Any) -> None:
    await run.conn.execute(
        q("flow_state_save"),
        run.flow.name,
        run.flow.trigger.connection,
        run.trigger.key,
        run.state_key,
        canonical_json(cursor),
        True,
        None,
        run.account,
    )


# -- watermark -----------------------------------------------------------------------------


async def _poll_watermark(run: _Run, sent: RequestCount) -> PollResult:
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
        await _record_quiet(run, requests, tracker.items_seen)
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
        await _save_state(run, step.cursor.to_json())
        await _insert_poll_run(run, requests, tracker.items_seen, created, None)
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


# -- snapshot and fingerprint --------------------------------------------------------------


async def _poll_snapshot(run: _Run, sent: RequestCount) -> PollResult:
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
            await _record_quiet(run, requests, count)
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
            await _save_state(run, cursor)
            requests = sent.value
            await _insert_poll_run(run, requests, count, created, None)
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


async def _commit_in_sql(run: _Run, loader: SnapshotLoader) -> tuple[int, int]:
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


async def _commit_in_memory(run: _Run, rows: list[Row], count: int) -> tuple[int, int] | None:
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


async def _upsert_snapshot(run: _Run, rows: list[tuple[str, str]]) -> None:
    if rows:
        await run.conn.execute(
            q("snapshot_upsert_keys"), run.flow.name, [k for k, _ in rows], [f for _, f in rows]
        )


async def _open_loader(run: _Run, rows: list[Row]) -> SnapshotLoader:
    loader = SnapshotLoader(await run.connect(), page_size=SNAPSHOT_BATCH)
    await loader.open()
    for key, fp, payload in rows:
        await loader.add(key, fp, canonical_json(payload))
    rows.clear()
    return loader


async def _enrich_ahead(run: _Run, rows: list[Row]) -> None:
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


async def _record_deltas(run: _Run, deltas: Iterable[Delta]) -> int:
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


async def _restore_snapshot(run: _Run, deltas: list[Delta]) -> None:
    """Put the snapshot rows of these deltas back to their fingerprint before this poll."""
    name = run.flow.name
    kept = [(name, d.item_key, d.previous) for d in deltas if d.previous is not None]
    if kept:
        await run.conn.executemany(q("snapshot_upsert_item"), kept)
    # An "added" row had no fingerprint before: restoring it means forgetting it again.
    gone = [(name, d.item_key) for d in deltas if d.previous is None]
    if gone:
        await run.conn.executemany(q("snapshot_delete_item"), gone)
