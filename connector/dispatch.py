"""The dispatcher: turns stored deliveries into done work, at least once per delivery.

A claim is one short transaction: due ``pending`` rows are locked with ``FOR UPDATE SKIP
LOCKED`` and become ``running`` with a lease (owner, expiry) and the next attempt number.
The actions then run outside any transaction: the claim's deliveries side by side (a task
each) under one deadline, the budget, shorter than the lease. As each ends, its outcome goes
to the ``finisher``, which writes many at once, each only where the row is still that
attempt's and ``running``: a worker that lost its lease (it hung, and the rescuer gave the
row to someone else) finishes nothing. Every attempt is written down; failures follow the
flow's retry schedule, then the delivery is ``dead`` until replayed.

Per flow: ``ordered`` runs one delivery at a time in the order they were recorded (a
failing one holds back the rest), and ``concurrency`` caps how many run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from connector import delivery_outcomes as outcomes
from connector import metrics
from connector.config import Config
from connector.db.health import DB_ERRORS
from connector.delivery_outcomes import Attempt, Outcome
from connector.delivery_report import OUTCOME_NAMES, DeliveryReport
from connector.errors import FatalError
from connector.finisher import Finisher
from connector.leases import default_worker_id
from connector.plan import FlowPlan
from connector.plugins import Action, ActionContext, ActionResult, StoredEvent
from connector.store import deliveries
from connector.templates import context_for, render_params
from connector.wall_clock import utc_now

log = structlog.get_logger("connector.dispatch")

WAKE_CHANNEL = "deliveries_due"


@dataclass(frozen=True)
class Claimed:
    """One claimed delivery and its event."""

    id: uuid.UUID
    event: StoredEvent
    action_index: int
    action_type: str
    connection_id: str | None
    attempt: int
    schedule_offset: int


def _alive(conn: asyncpg.Connection) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        # The pool took the connection back when the server went away.
        return False


async def _wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


def _payload(value: Any) -> dict[str, Any]:
    # The pool's codec has decoded the jsonb; a payload that is not an object goes out wrapped.
    return dict(value) if isinstance(value, dict) else {"value": value}


class _Batch:
    """The deliveries of one claim, run side by side under one deadline.

    They all start when the batch is claimed, so one timer at claim time + budget cuts off
    each attempt exactly where a timeout per attempt would, without a timer per attempt.
    """

    __slots__ = ("expired", "left", "reported", "tasks", "timer", "unreported")

    def __init__(self, size: int) -> None:
        self.expired = False
        self.left = size  # attempts still running
        self.unreported = size  # attempts whose finish is not written (or given up) yet
        self.tasks: list[asyncio.Task[None]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.reported: asyncio.Future[None] | None = None

    def expire(self) -> None:
        self.expired = True
        for task in self.tasks:
            if not task.done():
                task.cancel()


@dataclass(frozen=True, slots=True)
class _Done:
    """An attempt that ended, kept for its report once its finish is written."""

    item: Claimed
    outcome: Outcome
    duration_ms: int
    batch: _Batch


class Dispatcher:
    """Claims due deliveries, runs their actions, records each attempt, retries or gives up."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: Config,
        *,
        http: Any,
        providers: Any = None,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        batch_size: int = 100,
        max_in_flight: int = 200,
        lease: timedelta = timedelta(minutes=2),
        idle_wait: float = 1.0,
        rescue_every: timedelta = timedelta(seconds=15),
    ) -> None:
        self.pool = pool
        self.config = config
        self.http = http
        self.providers = providers
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.lease = lease
        # An action must end well inside its lease, so only a hung or dead worker loses one.
        self.budget = max(lease.total_seconds() - 10.0, lease.total_seconds() / 2)
        self.idle_wait = idle_wait
        self.rescue_every = rescue_every
        # One instance of each action class, made when first needed.
        self._actions: dict[type[Action[Any]], Action[Any]] = {}
        self._plans = _enabled(config)
        self._finisher: Finisher[_Done] = Finisher(
            pool, clock, written=self._written, failed=self._not_written
        )
        self._wake = asyncio.Event()
        # Claimed deliveries whose finish is not written (or given up) yet, and the batches
        # with attempts still running (their tasks are only weakly held by the loop).
        self._in_flight = 0
        self._settled = asyncio.Event()
        self._settled.set()
        self._batches: set[_Batch] = set()
        self._report = DeliveryReport(clock)

    def use_config(self, config: Config) -> None:
        """Deliver for ``config``'s flows from the next claim on (per-install flows change)."""
        self.config = config
        self._plans = _enabled(config)

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then let the attempts in flight finish."""
        listener = await self._listen()
        next_rescue = self.clock()
        log.info("dispatcher_started", worker=self.worker_id, flows=len(self._plans))
        try:
            backoff = 0.0
            while not stop.is_set():
                want = min(self.batch_size, self.max_in_flight - self._in_flight)
                got = 0
                try:
                    if self.clock() >= next_rescue:
                        await self.rescue()
                        next_rescue = self.clock() + self.rescue_every
                    if want > 0:
                        claimed = await self.claim(want)
                        got = len(claimed)
                        if claimed:
                            self._start(claimed)
                    backoff = 0.0
                    if listener is None or not _alive(listener):
                        # The database came back (or never let us listen): wake-ups again.
                        if listener is not None:
                            await self._unlisten(listener)
                        listener = await self._listen()
                except DB_ERRORS as exc:
                    # Postgres restarting or unreachable: keep going, the work is safe there.
                    backoff = min(30.0, max(0.5, backoff * 2))
                    log.warning("dispatcher_db_error", error=str(exc), retry_in=backoff)
                    await _wait_or_stop(stop, backoff)
                    continue
                if want > 0 and got == want:
                    continue
                await self._wait(stop)
            await self._settled.wait()
        except asyncio.CancelledError:
            # Cancelled past the drain: the attempts in flight stop too; their rows stay
            # running and the rescuer hands them on once their lease expires.
            for batch in list(self._batches):
                for task in batch.tasks:
                    task.cancel()
            raise
        finally:
            if listener is not None:
                await self._unlisten(listener)
            log.info("dispatcher_stopped", worker=self.worker_id)

    async def run_once(self) -> int:
        """Rescue expired leases, claim one batch and deliver it; returns how many ran."""
        await self.rescue()
        claimed = await self.claim(self.batch_size)
        await self.deliver_all(claimed)
        return len(claimed)

    async def deliver(self, item: Claimed) -> None:
        """Run one claimed delivery and record how it went."""
        await self.deliver_all([item])

    async def deliver_all(self, items: list[Claimed]) -> None:
        """Run claimed deliveries side by side; return once each is recorded and reported."""
        if not items:
            return
        batch = self._start(items)
        batch.reported = asyncio.get_running_loop().create_future()
        try:
            await batch.reported
        except asyncio.CancelledError:
            for task in batch.tasks:
                task.cancel()
            raise

    def _start(self, items: list[Claimed]) -> _Batch:
        """One task per delivery (for their requests to run side by side) and one timer."""
        loop = asyncio.get_running_loop()
        batch = _Batch(len(items))
        batch.tasks = [loop.create_task(self._attempt(item, batch)) for item in items]
        # Scheduled after the tasks, whose first steps run first: none is cut off unstarted.
        batch.timer = loop.call_later(self.budget, batch.expire)
        self._batches.add(batch)
        self._in_flight += len(items)
        self._settled.clear()
        return batch

    async def _wait(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=self.idle_wait, return_when="FIRST_COMPLETED")
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._wake.clear()
        # Gather a few more finishes or inserts into the next claim.
        await asyncio.sleep(0.005)

    async def _listen(self) -> asyncpg.Connection | None:
        try:
            conn = await self.pool.acquire()
        except DB_ERRORS as exc:
            log.warning("dispatcher_listen_failed", error=str(exc))
            return None
        try:
            await conn.add_listener(WAKE_CHANNEL, self._notified)
        except DB_ERRORS as exc:
            log.warning("dispatcher_listen_failed", error=str(exc))
            await self._release(conn)
            return None
        return conn

    async def _unlisten(self, conn: asyncpg.Connection) -> None:
        # After a Postgres restart this connection is dead: there is nothing to undo on it,
        # and it must not go back to the pool half-way through an operation.
        try:
            if not _alive(conn):
                raise ConnectionError("the listening connection was lost")
            await conn.remove_listener(WAKE_CHANNEL, self._notified)
        except DB_ERRORS:
            with contextlib.suppress(*DB_ERRORS):
                conn.terminate()
        await self._release(conn)

    async def _release(self, conn: asyncpg.Connection) -> None:
        with contextlib.suppress(*DB_ERRORS):
            await self.pool.release(conn)

    def _notified(self, *_args: Any) -> None:
        self._wake.set()

    # -- claim, rescue, finish ------------------------------------------------------------

    async def claim(self, limit: int) -> list[Claimed]:
        """Lease up to ``limit`` due deliveries to this worker."""
        if not self._plans or limit <= 0:
            return []
        now = self.clock()
        flows = [plan.flow for plan in self._plans.values()]
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await deliveries.claim(
                conn,
                owner=self.worker_id,
                now=now,
                lease_expires_at=now + self.lease,
                limit=limit,
                flow_names=[f.name for f in flows],
                max_running=[1 if f.ordered else f.concurrency for f in flows],
                ordered=[f.ordered for f in flows],
            )
        return [
            Claimed(
                id=row["id"],
                event=StoredEvent(
                    id=row["event_id"],
                    flow=row["flow_name"],
                    trigger=row["trigger_type"],
                    item_key=row["item_key"],
                    payload=_payload(row["payload"]),
                    occurred_at=row["occurred_at"],
                    created_at=row["event_created_at"],
                ),
                action_index=row["action_index"],
                action_type=row["action_type"],
                connection_id=row["connection_id"],
                attempt=row["attempt"],
                schedule_offset=row["schedule_offset"],
            )
            for row in sorted(rows, key=lambda r: r["seq"])
        ]

    async def rescue(self) -> int:
        """Return deliveries whose lease expired to ``pending``; returns how many."""
        async with self.pool.acquire() as conn:
            rows = await deliveries.rescue_expired(conn, now=self.clock())
            metrics.DEAD_DELIVERIES.set(await deliveries.count_dead(conn))
        for row in rows:
            log.warning(
                "delivery_lease_expired",
                delivery_id=str(row["id"]),
                flow=row["flow_name"],
                attempt=row["attempt"],
            )
        return len(rows)

    async def _attempt(self, item: Claimed, batch: _Batch) -> None:
        """Run one delivery's action and hand its outcome to the finisher."""
        started_at = self.clock()
        started = time.monotonic()
        try:
            try:
                outcome = outcomes.delivered(await self._run_action(item))
            except asyncio.CancelledError:
                task = asyncio.current_task()
                # The batch's deadline, not a shutdown: the attempt took too long.
                if not batch.expired or task is None or task.uncancel() > 0:
                    raise
                outcome = self._failed(item, TimeoutError())
            except Exception as exc:
                if not isinstance(exc, outcomes.EXPECTED):
                    # A bug in an action must not lose the event: log it loudly, try again.
                    log.exception(
                        "action_crashed", action=item.action_type, delivery_id=str(item.id)
                    )
                outcome = self._failed(item, exc)
        except BaseException:
            self._settle(batch, 1)
            raise
        finally:
            batch.left -= 1
            if batch.left == 0:
                if batch.timer is not None:
                    batch.timer.cancel()
                self._batches.discard(batch)
        duration_ms = int((time.monotonic() - started) * 1000)
        self._finisher.add(
            deliveries.Finished(
                id=item.id,
                attempt=item.attempt,
                state=outcome.state,
                next_attempt_at=outcome.next_attempt_at,
                summary=outcome.summary,
                error=outcome.error,
                started_at=started_at,
                duration_ms=duration_ms,
                outcome=OUTCOME_NAMES[outcome.state],
                status_code=outcome.status_code,
                detail=outcome.detail,
            ),
            _Done(item, outcome, duration_ms, batch),
        )

    def _failed(self, item: Claimed, exc: BaseException) -> Outcome:
        plan = self._plans.get(item.event.flow)
        attempt = Attempt(
            number=item.attempt,
            schedule_offset=item.schedule_offset,
            schedule=plan.flow.retry_schedule if plan is not None else [],
            budget=self.budget,
        )
        return outcomes.failed(attempt, exc, self.clock(), self.rng)

    def _settle(self, batch: _Batch, count: int) -> None:
        """``count`` of ``batch``'s deliveries are recorded, or left to the rescuer."""
        self._in_flight -= count
        if self._in_flight <= 0:
            self._settled.set()
        batch.unreported -= count
        if batch.unreported <= 0 and batch.reported is not None and not batch.reported.done():
            batch.reported.set_result(None)

    def _written(self, results: Sequence[tuple[_Done, bool]]) -> None:
        for done, recorded in results:
            try:
                self._report(done.item, done.outcome, done.duration_ms, recorded=recorded)
            finally:
                self._settle(done.batch, 1)
        self._wake.set()

    def _not_written(self, failed: Sequence[_Done], exc: Exception) -> None:
        for done in failed:
            # The row stays running; the rescuer hands it on once its lease expires.
            log.error("delivery_finish_failed", delivery_id=str(done.item.id), error=str(exc))
            self._settle(done.batch, 1)
        self._wake.set()

    async def _run_action(self, item: Claimed) -> ActionResult:
        plan = self._plans.get(item.event.flow)
        if plan is None:
            raise FatalError(f"flow {item.event.flow!r} is not in the configuration")
        index = item.action_index
        bound = plan.actions[index] if index < len(plan.actions) else None
        now = bound.key if bound is not None else None
        if bound is None or now != item.action_type:
            raise FatalError(
                f"the flow's action {index} is now {now!r}, "
                f"not {item.action_type!r} as when the event was recorded"
            )
        action = self._actions.get(bound.action)
        if action is None:
            action = self._actions[bound.action] = bound.action()
        params = render_params(
            bound.params, context_for(item.event.payload, plan.name, item.event.trigger)
        )
        ctx = ActionContext(
            delivery_id=str(item.id),
            attempt=item.attempt,
            flow=plan.name,
            action_index=index,
            connection_id=item.connection_id or bound.connection,
            http=self.http,
            providers=self.providers,
            clock=self.clock,
        )
        return await action.run(ctx, item.event, params)


def _enabled(config: Config) -> dict[str, FlowPlan]:
    return {plan.name: plan for plan in config.plans if plan.flow.enabled}
