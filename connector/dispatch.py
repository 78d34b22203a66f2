"""The dispatcher: turns stored deliveries into done work, at least once per delivery.

A claim is one short transaction: due ``pending`` rows are locked with ``FOR UPDATE SKIP
LOCKED`` and become ``running`` with a lease (owner, expiry) and the next attempt number.
The action then runs outside any transaction, bounded by a budget shorter than the lease,
and the outcome is written with ``WHERE id = $1 AND attempt = $2 AND state = 'running'``:
a worker that lost its lease (it hung, and the rescuer gave the row to someone else) finishes
nothing. Every attempt is written down; failures follow the flow's retry schedule, then the
delivery is ``dead`` until replayed.

Per flow: ``ordered`` runs one delivery at a time in the order they were recorded (a
failing one holds back the rest), and ``concurrency`` caps how many run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable
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
from connector.errors import FatalError
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
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value) if isinstance(value, dict) else {"value": value}


@dataclass(frozen=True)
class Finish:
    """One attempt's result, waiting to be written."""

    id: uuid.UUID
    attempt: int
    outcome: Outcome
    started_at: datetime
    duration_ms: int


_OUTCOME_NAMES = {"delivered": "delivered", "pending": "retry", "dead": "dead"}


class Finisher:
    """Writes finished attempts in batches: while one write is on its way, the next gathers.

    Each caller waits until its own result is committed, so a ``trigger_delivered`` line is
    only ever logged for a delivery that is durably marked delivered.
    """

    def __init__(self, pool: asyncpg.Pool, clock: Callable[[], datetime], limit: int = 500):
        self.pool = pool
        self.clock = clock
        self.limit = limit
        self._waiting: list[tuple[Finish, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, finish: Finish) -> bool:
        """Write ``finish``; True if it applied, False if the lease had been lost."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((finish, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        return await future

    async def _write_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self.limit], self._waiting[self.limit :]
            try:
                applied = await self._write([f for f, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for finish, future in batch:
                if not future.done():
                    future.set_result(finish.id in applied)

    async def _write(self, batch: list[Finish]) -> set[uuid.UUID]:
        finished = [
            deliveries.Finished(
                id=f.id,
                attempt=f.attempt,
                state=f.outcome.state,
                next_attempt_at=f.outcome.next_attempt_at,
                summary=f.outcome.summary,
                error=f.outcome.error,
                started_at=f.started_at,
                duration_ms=f.duration_ms,
                outcome=_OUTCOME_NAMES[f.outcome.state],
                status_code=f.outcome.status_code,
                detail=f.outcome.detail,
            )
            for f in batch
        ]
        async with self.pool.acquire() as conn:
            return await deliveries.finish(conn, finished=finished, now=self.clock())


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
        self._finisher = Finisher(pool, clock)
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        # Prometheus children, kept: flows and actions come from the flow file, so few.
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._latencies: dict[str, Any] = {}

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
                want = min(self.batch_size, self.max_in_flight - len(self._in_flight))
                got = 0
                try:
                    if self.clock() >= next_rescue:
                        await self.rescue()
                        next_rescue = self.clock() + self.rescue_every
                    if want > 0:
                        claimed = await self.claim(want)
                        got = len(claimed)
                        for item in claimed:
                            self._spawn(item)
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
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
        finally:
            if listener is not None:
                await self._unlisten(listener)
            log.info("dispatcher_stopped", worker=self.worker_id)

    async def run_once(self) -> int:
        """Rescue expired leases, claim one batch and deliver it; returns how many ran."""
        await self.rescue()
        claimed = await self.claim(self.batch_size)
        await asyncio.gather(*(self.deliver(item) for item in claimed))
        return len(claimed)

    def _spawn(self, item: Claimed) -> None:
        task = asyncio.create_task(self.deliver(item), name=f"delivery-{item.id}")
        self._in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

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

    async def deliver(self, item: Claimed) -> None:
        """Run one claimed delivery and record how it went."""
        started_at = self.clock()
        started = time.monotonic()
        outcome = await self._attempt(item)
        duration_ms = int((time.monotonic() - started) * 1000)
        try:
            recorded = await self._finisher.submit(
                Finish(item.id, item.attempt, outcome, started_at, duration_ms)
            )
        except DB_ERRORS as exc:
            # The row stays running; the rescuer hands it on once its lease expires.
            log.error("delivery_finish_failed", delivery_id=str(item.id), error=str(exc))
            return
        fields = {
            "flow": item.event.flow,
            "trigger": item.event.trigger,
            "event_id": item.event.id,
            "item_key": item.event.item_key,
            "action": item.action_type,
            "action_index": item.action_index,
            "delivery_id": str(item.id),
            "attempt": item.attempt,
            "duration_ms": duration_ms,
        }
        if recorded:
            self._counted(item, outcome.state).inc()
            if outcome.state == "delivered":
                self._latency(item.event.flow).observe(
                    max(0.0, (self.clock() - item.event.created_at).total_seconds())
                )
        if not recorded:
            # The lease ran out and the rescuer handed the row on: this result is not ours.
            log.warning("delivery_lease_lost", outcome=outcome.state, **fields)
        elif outcome.state == "delivered":
            log.info(
                "trigger_delivered",
                summary=outcome.summary,
                status_code=outcome.status_code,
                **fields,
            )
        elif outcome.state == "pending" and outcome.next_attempt_at is not None:
            log.warning(
                "delivery_failed",
                error=outcome.error,
                status_code=outcome.status_code,
                next_attempt_at=outcome.next_attempt_at.isoformat(timespec="seconds"),
                **fields,
            )
        else:
            log.error(
                "delivery_dead",
                error=outcome.error,
                status_code=outcome.status_code,
                **fields,
            )

    def _counted(self, item: Claimed, state: str) -> Any:
        # The counter's child per flow, action and outcome, looked up once: labels() checks
        # its arguments and takes a lock at every call.
        key = (item.event.flow, item.action_type, state)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = metrics.DELIVERIES.labels(
                flow=item.event.flow, action=item.action_type, outcome=_OUTCOME_NAMES[state]
            )
        return child

    def _latency(self, flow: str) -> Any:
        child = self._latencies.get(flow)
        if child is None:
            child = self._latencies[flow] = metrics.DELIVERY_LATENCY.labels(flow=flow)
        return child

    async def _attempt(self, item: Claimed) -> Outcome:
        try:
            async with asyncio.timeout(self.budget):
                result = await self._run_action(item)
        except Exception as exc:
            if not isinstance(exc, outcomes.EXPECTED):
                # A bug in an action must not lose the event: log it loudly, try again later.
                log.exception("action_crashed", action=item.action_type, delivery_id=str(item.id))
            plan = self._plans.get(item.event.flow)
            attempt = Attempt(
                number=item.attempt,
                schedule_offset=item.schedule_offset,
                schedule=plan.flow.retry_schedule if plan is not None else [],
                budget=self.budget,
            )
            return outcomes.failed(attempt, exc, self.clock(), self.rng)
        return outcomes.delivered(result)

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
