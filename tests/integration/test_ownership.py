"""Connection ownership across workers, and provider deliveries routed to the owner."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import asyncpg

from connector.dispatch import Dispatcher
from connector.ownership import Ownership
from tests.integration.dispatch_support import T0, FakeClock, flow_file, insert_event

CONNECTIONS = ["a", "b", "c", "d", "e"]
TTL = timedelta(seconds=30)


async def owners(pool: asyncpg.Pool) -> dict[str, str]:
    rows = await pool.fetch("SELECT resource, owner FROM leases WHERE resource LIKE 'own:%'")
    return {r["resource"].removeprefix("own:"): r["owner"] for r in rows}


async def test_each_connection_has_one_owner_and_shares_are_fair(db_pool: asyncpg.Pool) -> None:
    clock = FakeClock(T0)
    one = Ownership(db_pool, "w1", CONNECTIONS, ttl=TTL, clock=clock)
    two = Ownership(db_pool, "w2", CONNECTIONS, ttl=TTL, clock=clock)
    await one.tick()
    # Alone, the first worker takes everything.
    assert one.owned == set(CONNECTIONS)
    await two.tick()
    assert two.owned == set()
    # It now counts two live workers, keeps its share (3 of 5) and lets the rest go ...
    await one.tick()
    assert len(one.owned) == 3
    # ... which the newcomer picks up.
    await two.tick()
    assert len(two.owned) == 2
    assert one.owned.isdisjoint(two.owned)
    assert set(await owners(db_pool)) == set(CONNECTIONS)
    assert len({*one.owned, *two.owned}) == len(CONNECTIONS)


async def test_a_dead_workers_connections_are_taken_within_one_lease(
    db_pool: asyncpg.Pool,
) -> None:
    clock = FakeClock(T0)
    one = Ownership(db_pool, "w1", CONNECTIONS, ttl=TTL, clock=clock)
    two = Ownership(db_pool, "w2", CONNECTIONS, ttl=TTL, clock=clock)
    await one.tick()
    await two.tick()
    await one.tick()
    await two.tick()
    held_by_one = set(one.owned)
    assert held_by_one
    # w1 dies (stops ticking). Before its leases lapse, w2 may not take them.
    clock.advance(TTL / 2)
    await two.tick()
    assert two.owned.isdisjoint(held_by_one)
    clock.advance(TTL)
    await two.tick()
    assert two.owned == set(CONNECTIONS)
    assert set((await owners(db_pool)).values()) == {"w2"}


async def test_release_all_hands_over_at_once(db_pool: asyncpg.Pool) -> None:
    clock = FakeClock(T0)
    one = Ownership(db_pool, "w1", CONNECTIONS, ttl=TTL, clock=clock)
    two = Ownership(db_pool, "w2", CONNECTIONS, ttl=TTL, clock=clock)
    await one.tick()
    await one.release_all()
    assert await owners(db_pool) == {}
    await two.tick()
    assert two.owned == set(CONNECTIONS)


async def test_connections_dropped_from_the_config_are_released(db_pool: asyncpg.Pool) -> None:
    clock = FakeClock(T0)
    one = Ownership(db_pool, "w1", CONNECTIONS, ttl=TTL, clock=clock)
    await one.tick()
    one.set_connections(["a"])
    await one.tick()
    assert one.owned == {"a"}
    assert await owners(db_pool) == {"a": "w1"}


async def test_provider_deliveries_are_claimed_only_by_the_connection_owner(
    db_pool: asyncpg.Pool,
) -> None:
    config = flow_file(
        """
        - name: f
          trigger: {type: sendpulse.subscriber_added, params: {mailing_list_id: 1}}
          actions: [{type: log}]
        """
    )
    clock = FakeClock(T0)
    async with db_pool.acquire() as conn:
        [local] = await insert_event(conn, "f", "e-local", {"email": "x@y.io"}, actions=["log"])
        [routed] = await insert_event(conn, "f", "e-routed", {"email": "z@y.io"}, actions=["log"])
        await conn.execute("UPDATE deliveries SET connection_id = 'main' WHERE id = $1", routed)
    owner = Ownership(db_pool, "w2", ["main"], ttl=TTL, clock=clock)
    await owner.tick()
    async with aiohttp.ClientSession() as http:
        other = Dispatcher(db_pool, config, http=http, worker_id="w1", clock=clock)
        claimed = await other.claim(10)
        assert [c.id for c in claimed] == [local]
        # The owner's lease lapses (it died): now anyone may run the delivery.
        clock.advance(TTL * 2)
        claimed = await other.claim(10)
        assert [c.id for c in claimed] == [routed]


async def test_a_dead_workers_poll_lease_is_cleared_by_the_new_owner(
    db_pool: asyncpg.Pool,
) -> None:
    clock = FakeClock(T0)
    dead = Ownership(db_pool, "w1", ["a"], ttl=TTL, clock=clock)
    await dead.tick()
    # w1 dies in the middle of a poll: its poll lease was taken for five minutes.
    await db_pool.execute(
        "INSERT INTO leases (resource, owner, acquired_at, expires_at) VALUES ($1, $2, $3, $4)",
        "poll:a",
        "w1",
        T0,
        T0 + timedelta(minutes=5),
    )
    # An intake's short lease on another connection is nobody's orphan.
    await db_pool.execute(
        "INSERT INTO leases (resource, owner, acquired_at, expires_at) VALUES ($1, $2, $3, $4)",
        "poll:b",
        "intake:w9:1",
        T0,
        T0 + timedelta(minutes=5),
    )
    clock.advance(TTL * 2)
    heir = Ownership(db_pool, "w2", ["a", "b"], ttl=TTL, clock=clock)
    await heir.tick()
    assert heir.owned == {"a", "b"}
    resources = {r["resource"]: r["owner"] for r in await db_pool.fetch("SELECT * FROM leases")}
    assert "poll:a" not in resources
    assert resources["poll:b"] == "intake:w9:1"


async def test_a_live_workers_poll_lease_is_left_alone(db_pool: asyncpg.Pool) -> None:
    clock = FakeClock(T0)
    alive = Ownership(db_pool, "w1", [], ttl=TTL, clock=clock)
    await alive.tick()  # w1's heartbeat is live, though it owns nothing
    await db_pool.execute(
        "INSERT INTO leases (resource, owner, acquired_at, expires_at) VALUES ($1, $2, $3, $4)",
        "poll:a",
        "w1",
        T0,
        T0 + timedelta(minutes=5),
    )
    heir = Ownership(db_pool, "w2", ["a"], ttl=TTL, clock=clock)
    await heir.tick()
    assert heir.owned == {"a"}
    assert await db_pool.fetchval("SELECT owner FROM leases WHERE resource = 'poll:a'") == "w1"
