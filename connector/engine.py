"""One poll of one flow: lease, poll, diff, and one transaction that makes it all true at once.

Whatever happens between the fetch and the commit, the next poll finds the same changes and
gives them the same event ids: the events, their deliveries, the new cursor (or snapshot) and
the ``poll_runs`` row are written in one transaction, after checking that the connection's
lease is still ours. A poll that fails (or a worker that dies) leaves the state as it was.

This module runs a poll (the worker's :class:`Poller`: the lease, the flow's state, the
outcome and its log line); :mod:`connector.watermark_poll` and :mod:`connector.snapshot_poll`
read, diff and commit by the trigger's strategy, deciding with :mod:`connector.poll_policy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import Counter
from datetime import timedelta
from typing import Any

import asyncpg
import structlog

from connector import leases, progress
from connector import poll_policy as policy
from connector.config import Flow
from connector.errors import FatalError, RetriableError
from connector.plugins import ApiClient, PluginParams, Trigger
from connector.poll_context import Clock, PollContext, PollResult, insert_poll_run
from connector.poll_runs import PollRunBook
from connector.request_count import RequestCount, counting
from connector.snapshot_poll import poll_snapshot
from connector.store import flow_states, poll_start
from connector.wall_clock import utc_now
from connector.watermark_poll import poll_watermark

log = structlog.get_logger(__name__)

__all__ = [
    "DEFAULT_LEASE_TTL",
    "STORED_ACCOUNT",
    "PollResult",
    "Poller",
    "StoredAccount",
    "poll_flow",
]

DEFAULT_LEASE_TTL = timedelta(minutes=5)


class StoredAccount(enum.Enum):
    """``account=STORED_ACCOUNT``: the account is the one the connection's row records (an app
    install, which no flow file describes)."""

    ROW = "row"


STORED_ACCOUNT = StoredAccount.ROW


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
        # Leases being given up on a poll's own connection, outside their lock (_let_go):
        # a sibling starting meanwhile waits for the release before it takes the lease.
        self._releasing: dict[tuple[str, str], asyncio.Event] = {}

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
        account: str | StoredAccount | None = None,
        runs: PollRunBook | None = None,
    ) -> PollResult:
        """Poll one flow once and commit what changed; safe to call from any worker at any time.

        ``account`` is the fingerprint of the account ``client`` reaches
        (:mod:`connector.accounts`), or :data:`STORED_ACCOUNT` for the one the connection's
        row records: state taken under another one is no continuation of this one, and the
        flow starts a new baseline as a new flow would.

        A connection whose credentials were refused (``needs_reauth``) is not polled: the
        result is ``paused``. A poll that finds nothing moves no state and commits nothing;
        its ``poll_runs`` row goes to ``runs`` (written with others later) or, without a
        book, straight in.
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
        account: str | StoredAccount | None,
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
        async with self._lock(hold):
            while (releasing := self._releasing.get(hold)) is not None:
                await releasing.wait()
            # A sibling flow's poll in this process holds it already (and renews it, and every
            # commit checks it): taking it again would only write the row once more.
            shared = self._holds[hold] > 0
            async with pool.acquire() as conn:
                start = await poll_start.begin(
                    conn,
                    resource=resource,
                    owner=worker,
                    now=started,
                    expires_at=started + lease_ttl,
                    flow_name=flow.name,
                    connection_id=connection,
                    take=not shared,
                )
            paused = start.connection_status == "needs_reauth"
            if paused or not (shared or start.taken):
                # Nothing was taken: the statement takes no lease for a connection on hold.
                return PollResult(status="paused") if paused else self._skipped(bound, start.holder)
            self._holds[hold] += 1
        if isinstance(account, StoredAccount):
            account = start.connection_account
        state = start.state
        key = policy.state_key(trigger.key, params)
        fresh = policy.is_fresh(state, key, connection, account)
        run = PollContext(
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
            previous_cursor=None if state is None or fresh else state["cursor"],
            last_error=None if state is None else state["last_error"],
            runs=runs,
        )
        try:
            return await _poll(run, bound)
        finally:
            await self._let_go(hold, run)

    @staticmethod
    def _skipped(bound: Any, holder: str | None) -> PollResult:
        bound.info("poll_skipped", reason="lease_held", holder=holder)
        return PollResult(status="skipped")

    def _count_out(self, hold: tuple[str, str]) -> bool:
        """One poll less under the shared lease; True for the last one, which gives it up."""
        self._holds[hold] -= 1
        if self._holds[hold] > 0:
            return False
        del self._holds[hold]
        return True

    async def _let_go(self, hold: tuple[str, str], run: PollContext) -> None:
        """Count the poll out of its lease and give its connection back; the last poll out
        gives the lease up, on the poll's own connection when it holds one (a commit's).

        Counted out first: without a database to release it on, the lease lapses alone.
        """
        if run.holds_connection and not self._lock(hold).locked():
            # No sibling is starting (that happens under the lock), so no wait: the release
            # runs on this poll's connection, and a sibling that starts meanwhile waits for it
            # before taking the lease, holding no pooled connection while it waits.
            try:
                if self._count_out(hold):
                    released = self._releasing[hold] = asyncio.Event()
                    try:
                        await leases.release(run.conn, *hold)
                    finally:
                        del self._releasing[hold]
                        released.set()
            finally:
                await run.disconnect()
            return
        # Given back before the lease's lock is awaited (see _poll_leased).
        await run.disconnect()
        async with self._lock(hold):
            if self._count_out(hold):
                async with run.pool.acquire() as conn:
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
    account: str | StoredAccount | None = None,
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


async def _poll(run: PollContext, bound: Any) -> PollResult:
    run.progress = progress.begin(run.flow.name, run.trigger.key, run.worker)
    try:
        return await _poll_counted(run, bound)
    finally:
        progress.end(run.progress)


async def _poll_counted(run: PollContext, bound: Any) -> PollResult:
    # This poll's requests only: the client is shared with the connection's other flows.
    with counting() as sent:
        try:
            if run.trigger.strategy == "watermark":
                result = await poll_watermark(run, sent)
            else:
                result = await poll_snapshot(run, sent)
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


async def _record_failure(
    run: PollContext, sent: RequestCount, exc: Exception, bound: Any
) -> PollResult:
    message = f"{type(exc).__name__}: {exc}"
    requests = sent.value
    flow = run.flow
    await run.connect()
    async with run.conn.transaction():
        # A poll that lost its lease writes no state: the flow is another poll's now, or
        # its install was removed under it (and must stay removed).
        if not isinstance(exc, leases.LeaseLost):
            await flow_states.set_error(
                run.conn,
                flow_name=flow.name,
                connection_id=flow.trigger.connection,
                trigger_type=run.trigger.key,
                state_key=run.state_key,
                error=message,
            )
        await insert_poll_run(run, requests, 0, 0, message)
    if message != run.last_error:
        # Once per change of state, not once per poll: a broken flow must not flood the log.
        bound.warning("trigger_failed", error=message, retriable=isinstance(exc, RetriableError))
    return PollResult(status="failed", requests=requests, error=message)
