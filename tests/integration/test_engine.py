"""The poll engine on a real Postgres, with a small in-test trigger over an in-memory list.

The trigger here is deliberately tiny: these tests are about the engine's promises (one
transaction, stable ids, leases, first runs, failures), not about any SendPulse endpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import asyncpg
import pytest
from structlog.testing import capture_logs

from connector import leases
from connector.config import ActionSpec, Flow, TriggerSpec
from connector.diff import snapshot_event_id
from connector.engine import Poller, PollResult, poll_flow
from connector.errors import FatalError
from connector.events import NewEvent, record_events
from connector.plugins import ApiClient, Item, PluginParams, SnapshotChange, Strategy, Trigger
from connector.request_count import count_request
from connector.store import snapshot_items

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Store:
    """The 'remote account': an in-memory list the tests change, with a request counter."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.requests_made = 0
        self.fail: Exception | None = None
        self.crash_after_fetch: Exception | None = None
        self.gate: asyncio.Event | None = None
        # Set when a request waits at the gate: the poll is inside its fetch.
        self.at_gate = asyncio.Event()

    async def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> Any:
        self.requests_made += 1
        count_request()
        if self.fail is not None:
            raise self.fail
        if self.gate is not None:
            self.at_gate.set()
            await self.gate.wait()
        return [dict(v) for v in self.items.values()]

    async def iter_offset(
        self, path: str, *, params: Mapping[str, Any] | None = None, limit: int = 100
    ) -> AsyncIterator[Item]:
        for item in await self.request("GET", path):
            yield item


async def inside_fetch(store: Store) -> None:
    """Wait until a poll waits at ``store``'s gate; fail, saying so, if none ever does."""
    try:
        await asyncio.wait_for(store.at_gate.wait(), 30)
    except TimeoutError:
        raise AssertionError("gave up after 30 s: no poll reached the store's gate") from None


class Params(PluginParams):
    list_id: int = 1
    to: str | None = None


class _Base(Trigger):
    Params = Params
    scope: ClassVar[str] = "test"
    payload_fields = frozenset({"id", "status", "at"})

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        for item in await client.request("GET", "/items"):
            yield item
        store = client
        assert isinstance(store, Store)
        if store.crash_after_fetch is not None:
            raise store.crash_after_fetch


class ItemCreated(_Base):
    key: ClassVar[str] = "test.item_created"
    strategy: ClassVar[Strategy] = "watermark"
    time_ordered: ClassVar[bool] = True
    overlap: ClassVar[float] = 60.0

    def position_of(self, item: Item) -> float:
        return float(item["at"])


class ItemJoined(_Base):
    key: ClassVar[str] = "test.item_joined"
    strategy: ClassVar[Strategy] = "snapshot"
    emits: ClassVar[frozenset[SnapshotChange]] = frozenset({"added", "removed"})


class ItemNumbered(ItemJoined):
    """A snapshot whose items carry a growing number, as campaigns carry ids."""

    key: ClassVar[str] = "test.item_numbered"
    first_run_order: ClassVar[str | None] = "n"


class StatusChanged(_Base):
    key: ClassVar[str] = "test.status_changed"
    strategy: ClassVar[Strategy] = "fingerprint"
    emits: ClassVar[frozenset[SnapshotChange]] = frozenset({"changed"})

    def fingerprint_of(self, item: Item) -> str:
        return str(item["status"])

    def changed_payload(self, payload: dict[str, Any], previous: str | None) -> dict[str, Any]:
        return {**payload, "previous_status": previous}

    def wants(self, kind: Any, payload: Mapping[str, Any]) -> bool:
        to = getattr(self.params, "to", None)
        return to is None or payload["status"] == to


def make_flow(trigger: type[Trigger], **extra: Any) -> Flow:
    return Flow(
        name="f1",
        trigger=TriggerSpec(type=trigger.key, connection="main", params={}),
        actions=[
            ActionSpec(type="webhook", params={"url": "http://127.0.0.1:1/a"}),
            ActionSpec(type="log"),
        ],
        **extra,
    )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


Poll = Callable[..., Any]


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def poller() -> Poller:
    # One worker's bookkeeping: the polls of one test share it, as a worker's polls do.
    return Poller()


@pytest.fixture
def poll(db_pool: asyncpg.Pool, store: Store, clock: Clock, poller: Poller) -> Poll:
    async def run(
        trigger: type[Trigger],
        flow: Flow | None = None,
        params: PluginParams | None = None,
        worker: str = "w1",
    ) -> PollResult:
        return await poll_flow(
            flow or make_flow(trigger),
            params or Params(),
            client=store,
            pool=db_pool,
            worker=worker,
            clock=clock,
            trigger=trigger,
            poller=poller,
        )

    return run


async def events(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT * FROM events ORDER BY created_at, id"))


def at(minutes: float) -> float:
    return (T0 + timedelta(minutes=minutes)).timestamp()


async def test_watermark_baseline_then_one_event_with_its_deliveries(
    poll: Poll, store: Store, db_pool: asyncpg.Pool, clock: Clock
) -> None:
    store.items["a"] = {"id": "a", "at": at(-5)}
    first = await poll(ItemCreated)
    assert (first.status, first.events_created, first.baseline) == ("ok", 0, True)
    store.items["b"] = {"id": "b", "at": at(1)}
    clock.now = T0 + timedelta(minutes=5)
    second = await poll(ItemCreated)
    third = await poll(ItemCreated)
    assert second.events_created == 1
    assert third.events_created == 0
    rows = await events(db_pool)
    assert [(r["item_key"], r["trigger_type"], r["connection_id"]) for r in rows] == [
        ("b", "test.item_created", "main")
    ]
    deliveries = await db_pool.fetch("SELECT * FROM deliveries ORDER BY action_index")
    assert [(d["event_id"], d["action_index"], d["action_type"]) for d in deliveries] == [
        (rows[0]["id"], 0, "webhook"),
        (rows[0]["id"], 1, "log"),
    ]
    runs = await db_pool.fetch("SELECT * FROM poll_runs ORDER BY id")
    assert [(r["requests"], r["items_seen"], r["events_created"]) for r in runs] == [
        (1, 1, 0),
        (1, 2, 1),
        (1, 2, 0),
    ]
    assert all(r["error"] is None and r["worker"] == "w1" for r in runs)


async def test_poll_finished_line_carries_the_figures(poll: Poll, store: Store) -> None:
    store.items["a"] = {"id": "a", "at": at(0)}
    with capture_logs() as logs:
        await poll(ItemJoined)
    finished = [e for e in logs if e["event"] == "poll_finished"]
    assert len(finished) == 1
    assert finished[0]["flow"] == "f1"
    assert finished[0]["requests"] == 1
    assert finished[0]["items_seen"] == 1
    assert finished[0]["events_created"] == 0
    assert finished[0]["baseline"] is True


async def test_watermark_start_timestamp_emits_items_after_it(
    poll: Poll, store: Store, clock: Clock
) -> None:
    store.items["old"] = {"id": "old", "at": at(-120)}
    store.items["new"] = {"id": "new", "at": at(-30)}
    flow = make_flow(ItemCreated, start=T0 - timedelta(hours=1))
    result = await poll(ItemCreated, flow)
    assert result.events_created == 1
    assert result.cursor["position"] == at(-30)


async def test_watermark_with_nothing_seen_starts_from_the_poll_start(poll: Poll) -> None:
    result = await poll(ItemCreated)
    assert result.cursor["position"] == T0.timestamp()


async def test_start_all_is_capped_and_says_how_many_were_held_back(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    for n in range(5):
        store.items[f"i{n}"] = {"id": f"i{n}", "at": at(-10 + n)}
    flow = make_flow(ItemCreated, start="all", max_first_run_events=3)
    with capture_logs() as logs:
        result = await poll(ItemCreated, flow)
    assert (result.events_created, result.held_back) == (3, 2)
    # The newest three, not an arbitrary three.
    assert sorted(r["item_key"] for r in await events(db_pool)) == ["i2", "i3", "i4"]
    held = [e for e in logs if e["event"] == "first_run_held_back"]
    assert held and held[0]["held_back"] == 2
    assert (await poll(ItemCreated, flow)).events_created == 0


async def test_snapshot_start_all_is_capped(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    for n in range(4):
        store.items[f"i{n}"] = {"id": f"i{n}"}
    flow = make_flow(ItemJoined, start="all", max_first_run_events=3)
    result = await poll(ItemJoined, flow)
    assert (result.events_created, result.held_back) == (3, 1)
    assert (await poll(ItemJoined, flow)).events_created == 0


async def test_snapshot_start_all_takes_the_newest_by_the_trigger_order(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    # Listed neither by key nor by number: the choice must follow the number.
    for key, n in [("d", 2), ("a", 9), ("c", 1), ("b", 5), ("e", 10)]:
        store.items[key] = {"id": key, "n": n}
    flow = make_flow(ItemNumbered, start="all", max_first_run_events=3)
    result = await poll(ItemNumbered, flow)
    assert (result.events_created, result.held_back) == (3, 2)
    assert sorted(r["item_key"] for r in await events(db_pool)) == ["a", "b", "e"]


async def test_snapshot_start_all_without_an_order_takes_the_first_as_listed(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    # Not the first in alphabetical order (a, b): the first the list gives.
    for key in ["d", "c", "a", "b"]:
        store.items[key] = {"id": key}
    flow = make_flow(ItemJoined, start="all", max_first_run_events=2)
    result = await poll(ItemJoined, flow)
    assert (result.events_created, result.held_back) == (2, 2)
    assert sorted(r["item_key"] for r in await events(db_pool)) == ["c", "d"]


async def test_snapshot_added_removed_and_added_again_are_three_events(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    store.items["a"] = {"id": "a"}
    assert (await poll(ItemJoined)).events_created == 0
    store.items["b"] = {"id": "b"}
    assert (await poll(ItemJoined)).events_created == 1
    del store.items["b"]
    assert (await poll(ItemJoined)).events_created == 1
    store.items["b"] = {"id": "b", "status": 2}
    assert (await poll(ItemJoined)).events_created == 1
    assert (await poll(ItemJoined)).events_created == 0
    rows = await events(db_pool)
    assert [r["item_key"] for r in rows] == ["b", "b", "b"]
    assert len({r["id"] for r in rows}) == 3
    assert [r["payload"] for r in rows][1] == {"id": "b"}
    snapshot = await db_pool.fetch("SELECT item_key FROM snapshot_items ORDER BY item_key")
    assert [r["item_key"] for r in snapshot] == ["a", "b"]


async def test_fingerprint_change_with_to_filter_and_previous_value(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    store.items["a"] = {"id": "a", "status": "draft"}
    params = Params(to="sent")
    assert (await poll(StatusChanged, params=params)).events_created == 0
    store.items["a"]["status"] = "queued"
    assert (await poll(StatusChanged, params=params)).events_created == 0
    store.items["a"]["status"] = "sent"
    assert (await poll(StatusChanged, params=params)).events_created == 1
    rows = await events(db_pool)
    assert rows[0]["payload"] == {"id": "a", "status": "sent", "previous_status": "queued"}


async def test_changed_params_start_a_new_baseline(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    store.items["a"] = {"id": "a"}
    await poll(ItemJoined)
    store.items["b"] = {"id": "b"}
    result = await poll(ItemJoined, params=Params(list_id=2))
    assert (result.baseline, result.events_created) == (True, 0)
    # Same params as before the change: the state is the new baseline's, so nothing fires.
    assert (await poll(ItemJoined, params=Params(list_id=2))).events_created == 0


async def test_crash_between_fetch_and_commit_loses_and_doubles_nothing(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    await poll(ItemJoined)
    store.items["a"] = {"id": "a"}
    store.crash_after_fetch = RuntimeError("worker died")
    with pytest.raises(RuntimeError):
        await poll(ItemJoined)
    assert await events(db_pool) == []
    last = "SELECT error FROM poll_runs ORDER BY id DESC LIMIT 1"
    assert await db_pool.fetchval(last) == "RuntimeError: worker died"
    store.crash_after_fetch = None
    assert (await poll(ItemJoined)).events_created == 1
    assert (await poll(ItemJoined)).events_created == 0
    assert len(await events(db_pool)) == 1


async def test_failure_inside_the_commit_rolls_everything_back(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    await poll(ItemJoined)
    store.items["a"] = {"id": "a"}
    # The last write of the commit fails once: the events written before it must vanish too.
    await db_pool.execute(
        """
        CREATE SEQUENCE crash_once;
        CREATE FUNCTION crash() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- A sequence, because it survives the rollback this crash causes.
            IF nextval('crash_once') = 1 THEN
                RAISE EXCEPTION 'injected crash';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER crash BEFORE INSERT ON poll_runs FOR EACH ROW EXECUTE FUNCTION crash();
        """
    )
    with pytest.raises(asyncpg.RaiseError):
        await poll(ItemJoined)
    assert await events(db_pool) == []
    assert await db_pool.fetchval("SELECT count(*) FROM deliveries") == 0
    assert (await poll(ItemJoined)).events_created == 1
    assert (await poll(ItemJoined)).events_created == 0


async def test_two_workers_at_once_make_one_set_of_events(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    await poll(ItemJoined)
    store.items["a"] = {"id": "a"}
    store.items["b"] = {"id": "b"}
    store.gate = asyncio.Event()
    with capture_logs() as logs:
        first = asyncio.create_task(poll(ItemJoined, worker="w1"))
        # w1 holds the lease and waits inside its fetch; w2 arrives meanwhile.
        await inside_fetch(store)
        second = await poll(ItemJoined, worker="w2")
        store.gate.set()
        result = await first
    assert second.status == "skipped"
    assert result.events_created == 2
    assert any(e["event"] == "poll_skipped" and e["worker"] == "w2" for e in logs)
    assert len(await events(db_pool)) == 2


async def test_a_worker_whose_lease_lapsed_cannot_commit(
    poll: Poll, store: Store, db_pool: asyncpg.Pool, clock: Clock
) -> None:
    await poll(ItemJoined)
    store.items["a"] = {"id": "a"}
    store.gate = asyncio.Event()
    slow = asyncio.create_task(poll(ItemJoined, worker="w1"))
    await inside_fetch(store)
    # w1 stalls past its lease; w2 takes over and commits the change.
    clock.now = T0 + timedelta(minutes=10)
    store.gate.set()
    other = await poll(ItemJoined, worker="w2")
    result = await slow
    assert other.events_created == 1
    assert result.status == "failed"
    assert "LeaseLost" in (result.error or "")
    assert len(await events(db_pool)) == 1


async def test_fatal_error_is_recorded_logged_once_and_state_untouched(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    store.items["a"] = {"id": "a"}
    await poll(ItemJoined)
    before = await db_pool.fetchrow("SELECT cursor, state_key FROM flow_states")
    store.fail = FatalError("Book not found")
    store.items["b"] = {"id": "b"}
    with capture_logs() as logs:
        one = await poll(ItemJoined)
        two = await poll(ItemJoined)
    assert one.status == two.status == "failed"
    assert [e["event"] for e in logs].count("trigger_failed") == 1
    after = await db_pool.fetchrow("SELECT cursor, state_key, last_error FROM flow_states")
    assert (after["cursor"], after["state_key"]) == (before["cursor"], before["state_key"])
    assert after["last_error"] == "FatalError: Book not found"
    runs = await db_pool.fetch("SELECT error FROM poll_runs ORDER BY id")
    assert [r["error"] for r in runs] == [None] + ["FatalError: Book not found"] * 2
    store.fail = None
    with capture_logs() as logs:
        fixed = await poll(ItemJoined)
    assert fixed.events_created == 1
    assert any(e["event"] == "trigger_recovered" for e in logs)
    assert await db_pool.fetchval("SELECT last_error FROM flow_states") is None


async def test_lease_is_exclusive_until_it_expires(db_pool: asyncpg.Pool) -> None:
    ttl = timedelta(minutes=1)
    async with db_pool.acquire() as conn:
        assert await leases.acquire(conn, "poll:x", "w1", T0, ttl)
        assert not await leases.acquire(conn, "poll:x", "w2", T0 + timedelta(seconds=59), ttl)
        assert await leases.acquire(conn, "poll:x", "w1", T0 + timedelta(seconds=30), ttl)
        await leases.renew(conn, "poll:x", "w1", T0 + timedelta(seconds=60), ttl)
        assert not await leases.acquire(conn, "poll:x", "w2", T0 + timedelta(seconds=100), ttl)
        assert await leases.acquire(conn, "poll:x", "w2", T0 + timedelta(seconds=121), ttl)
        with pytest.raises(leases.LeaseLost):
            await leases.renew(conn, "poll:x", "w1", T0 + timedelta(seconds=122), ttl)
        await leases.release(conn, "poll:x", "w1")
        assert (await leases.holder(conn, "poll:x") or ("",))[0] == "w2"
        await leases.release(conn, "poll:x", "w2")
        assert await leases.holder(conn, "poll:x") is None


async def test_same_flow_twice_at_once_in_one_worker_is_skipped(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    await poll(ItemJoined)
    store.items["a"] = {"id": "a"}
    store.gate = asyncio.Event()
    first = asyncio.create_task(poll(ItemJoined))
    await inside_fetch(store)
    again = await poll(ItemJoined)
    store.gate.set()
    assert again.status == "skipped"
    assert (await first).events_created == 1
    assert len(await events(db_pool)) == 1


async def test_two_flows_of_one_connection_share_its_lease(
    poll: Poll, store: Store, db_pool: asyncpg.Pool, clock: Clock, poller: Poller
) -> None:
    other = make_flow(ItemJoined).model_copy(update={"name": "f2"})
    slow = Store()
    slow.items["a"] = {"id": "a"}

    async def poll_other() -> PollResult:
        return await poll_flow(
            other,
            Params(),
            client=slow,
            pool=db_pool,
            worker="w1",
            clock=clock,
            trigger=ItemJoined,
            poller=poller,
        )

    await poll(ItemJoined)
    await poll_other()
    store.items["a"] = {"id": "a"}
    slow.items["b"] = {"id": "b"}
    slow.gate = asyncio.Event()
    second = asyncio.create_task(poll_other())
    await inside_fetch(slow)
    # f1 polls and finishes while f2, on the same connection, is still fetching.
    first = await poll(ItemJoined)
    slow.gate.set()
    result = await second
    assert (first.status, first.events_created) == ("ok", 1)
    # f2 did not lose the lease when f1 finished first.
    assert (result.status, result.events_created) == ("ok", 1), result.error
    async with db_pool.acquire() as conn:
        assert await leases.holder(conn, "poll:main") is None


async def test_webhook_then_poll_is_one_event_and_ids_agree(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    flow = make_flow(ItemJoined)
    await poll(ItemJoined)
    store.items["a"] = {"id": "a"}
    async with db_pool.acquire() as conn:
        predicted = await snapshot_event_id(conn, "f1", ItemJoined.key, "b", "added")
    store.items["b"] = {"id": "b"}
    # "a" arrives by webhook first, the way the intake records it.
    async with db_pool.acquire() as conn, conn.transaction():
        eid = await snapshot_event_id(conn, "f1", ItemJoined.key, "a", "added")
        made = await record_events(conn, flow, [NewEvent(eid, "a", {"id": "a"})], source="webhook")
        await snapshot_items.upsert_keys(conn, flow_name="f1", item_keys=["a"], fingerprints=[""])
    result = await poll(ItemJoined)
    rows = await events(db_pool)
    assert made == 1
    assert result.events_created == 1
    assert {(r["item_key"], r["source"]) for r in rows} == {("a", "webhook"), ("b", "poll")}
    assert next(r["id"] for r in rows if r["item_key"] == "b") == predicted
