"""The engine with the real SendPulse snapshot triggers over an in-memory account.

A change the engine drops (a removal that was only a paging miss, a campaign the paging
skipped for one poll) must leave the stored snapshot as it was, so that the real change, if
it comes later, is still found, exactly once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import pytest

from connector import leases
from connector.engine import Poller, PollResult, poll_flow
from connector.errors import RetriableError
from connector.http_client.api_errors import NotFound
from connector.plugins import PluginParams, Trigger
from connector.request_count import count_request
from tests.integration.test_engine import Clock, ItemJoined, Params, Store, make_flow
from triggers.sendpulse._subscribers import ListParams
from triggers.sendpulse.campaign_status_changed import CampaignStatusChanged, CampaignStatusParams
from triggers.sendpulse.subscriber_removed import SubscriberRemoved

EMAILS = "/addressbooks/1/emails"


class Account(Store):
    """The in-memory list, plus fixed replies (or errors) for single-item paths."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: dict[str, Any] = {}

    async def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> Any:
        if path not in self.replies:
            return await super().request(method, path, params=params, json=json)
        self.requests_made += 1
        count_request()
        reply = self.replies[path]
        if isinstance(reply, Exception):
            raise reply
        return reply


@pytest.fixture
def account() -> Account:
    return Account()


async def _poll(
    pool: asyncpg.Pool, account: Account, trigger: type[Trigger], params: PluginParams
) -> PollResult:
    result = await poll_flow(
        make_flow(trigger),
        params,
        client=account,
        pool=pool,
        worker="w1",
        clock=Clock(),
        trigger=trigger,
    )
    assert result.status == "ok", result.error
    return result


async def _payloads(pool: asyncpg.Pool) -> list[str]:
    return [r["payload"] for r in await pool.fetch("SELECT payload FROM events ORDER BY id")]


async def test_a_removal_found_not_to_be_one_is_still_caught_when_it_happens(
    db_pool: asyncpg.Pool, account: Account
) -> None:
    for name in ("a", "b", "c"):
        account.items[name] = {"email": f"{name}@x.io", "status": 1}
    params = ListParams(mailing_list_id=1)
    assert (await _poll(db_pool, account, SubscriberRemoved, params)).baseline
    # The list misses b, but b is still there when asked directly: no event.
    del account.items["b"]
    # The documented answer for one address: an object, not a list.
    account.replies[f"{EMAILS}/b@x.io"] = {"email": "b@x.io", "abook_id": "1", "status": 1}
    assert (await _poll(db_pool, account, SubscriberRemoved, params)).events_created == 0
    # Now b really leaves: the next poll must still see it as removed.
    account.replies[f"{EMAILS}/b@x.io"] = NotFound(
        "Email not found", status=404, error_code=213, meaning=None
    )
    assert (await _poll(db_pool, account, SubscriberRemoved, params)).events_created == 1
    assert (await _poll(db_pool, account, SubscriberRemoved, params)).events_created == 0
    rows = await db_pool.fetch("SELECT item_key FROM events")
    assert [r["item_key"] for r in rows] == ["b@x.io"]


def _campaign(campaign_id: int, status: int) -> dict[str, Any]:
    message = {"subject": f"S{campaign_id}", "sender_email": "me@x.io", "list_id": 1}
    return {"id": campaign_id, "name": f"C{campaign_id}", "status": status, "message": message}


async def test_a_campaign_missed_for_one_poll_keeps_its_status_change(
    db_pool: asyncpg.Pool, account: Account
) -> None:
    account.items["1"] = _campaign(1, 0)
    account.items["2"] = _campaign(2, 0)
    params = CampaignStatusParams()
    assert (await _poll(db_pool, account, CampaignStatusChanged, params)).baseline
    missed = account.items.pop("2")
    assert (await _poll(db_pool, account, CampaignStatusChanged, params)).events_created == 0
    account.items["2"] = {**missed, "status": 2}
    assert (await _poll(db_pool, account, CampaignStatusChanged, params)).events_created == 1
    rows = await db_pool.fetch("SELECT item_key, payload FROM events")
    assert [r["item_key"] for r in rows] == ["2"]
    assert rows[0]["payload"]["previous_status"] == 0
    assert rows[0]["payload"]["status"] == 2


async def test_a_sent_campaign_missed_for_one_poll_is_not_announced_again(
    db_pool: asyncpg.Pool, account: Account
) -> None:
    account.items["1"] = _campaign(1, 0)
    params = CampaignStatusParams(to=3)
    assert (await _poll(db_pool, account, CampaignStatusChanged, params)).baseline
    account.items["1"] = _campaign(1, 3)
    assert (await _poll(db_pool, account, CampaignStatusChanged, params)).events_created == 1
    missed = account.items.pop("1")
    assert (await _poll(db_pool, account, CampaignStatusChanged, params)).events_created == 0
    account.items["1"] = missed
    assert (await _poll(db_pool, account, CampaignStatusChanged, params)).events_created == 0
    assert len(await _payloads(db_pool)) == 1


async def test_flows_sharing_a_connection_never_take_each_others_lease(
    db_pool: asyncpg.Pool,
) -> None:
    # Four flows on one connection in one worker, polled together again and again: each one
    # that ends while a sibling is still taking the lease must leave that lease alone.
    flows = [make_flow(ItemJoined).model_copy(update={"name": f"f{i}"}) for i in range(4)]
    stores = [Store() for _ in flows]
    clock = Clock()
    poller = Poller()
    outcomes: Counter[str] = Counter()
    for round_ in range(40):
        for i, store in enumerate(stores):
            store.items[f"{round_}-{i}"] = {"id": f"{round_}-{i}"}
        results = await asyncio.gather(
            *(
                poll_flow(
                    flow,
                    Params(),
                    client=store,
                    pool=db_pool,
                    worker="w1",
                    clock=clock,
                    trigger=ItemJoined,
                    poller=poller,
                )
                for flow, store in zip(flows, stores, strict=True)
            )
        )
        outcomes.update(r.error or r.status for r in results)
    assert outcomes == Counter({"ok": 160})
    async with db_pool.acquire() as conn:
        assert await leases.holder(conn, "poll:main") is None


class FailsWhenLetGo(Store):
    """A fetch that waits at a gate, then fails: its poll ends without touching the lease."""

    async def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> Any:
        self.requests_made += 1
        count_request()
        assert self.gate is not None
        await self.gate.wait()
        raise RetriableError("the account is down")


async def _true(value: bool) -> bool:
    return value


async def _waiters(pool: asyncpg.Pool, n: int) -> bool:
    # Asked outside the blocking transaction: inside one, pg_stat_activity is a snapshot.
    waiting = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    return bool(waiting >= n)


async def _failed(pool: asyncpg.Pool, flow: str) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM poll_runs WHERE flow_name = $1", flow))


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """A bounded wait for something another task does (10 ms steps); fails if it never does."""
    for _ in range(3000):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"gave up after 30 s waiting for {what}")


async def test_a_sibling_ending_while_a_flow_polls_leaves_the_lease_alone(
    db_pool: asyncpg.Pool,
) -> None:
    a_flow = make_flow(ItemJoined).model_copy(update={"name": "a"})
    b_flow = make_flow(ItemJoined).model_copy(update={"name": "b"})
    a_store, b_store, clock = FailsWhenLetGo(), Store(), Clock()
    a_store.gate, b_store.gate = asyncio.Event(), asyncio.Event()
    poller = Poller()

    def poll(flow: Any, store: Store) -> Any:
        return poll_flow(
            flow,
            Params(),
            client=store,
            pool=db_pool,
            worker="w1",
            clock=clock,
            trigger=ItemJoined,
            poller=poller,
        )

    first = asyncio.create_task(poll(a_flow, a_store))
    second: asyncio.Task[PollResult] | None = None
    try:
        await _until(lambda: _true(a_store.requests_made > 0), "flow a to fetch")
        second = asyncio.create_task(poll(b_flow, b_store))
        await _until(lambda: _true(b_store.requests_made > 0), "flow b to fetch under the lease")
        # Flow a fails and ends while b still polls under the shared lease.
        a_store.gate.set()
        assert (await asyncio.wait_for(first, 30)).status == "failed"
        async with db_pool.acquire() as conn:
            held = await leases.holder(conn, "poll:main")
        # The lease stays b's (the worker's): a's end must not give it up under b.
        assert held is not None and held[0] == "w1", held
    finally:
        a_store.gate.set()
        b_store.gate.set()
    assert second is not None
    result = await asyncio.wait_for(second, 30)
    assert (result.status, result.error) == ("ok", None)
    async with db_pool.acquire() as conn:
        assert await leases.holder(conn, "poll:main") is None


async def test_pointing_a_flow_at_another_connection_starts_a_new_baseline(
    db_pool: asyncpg.Pool,
) -> None:
    flow = make_flow(ItemJoined)
    old, new = Store(), Store()
    old.items = {k: {"id": k} for k in ("a", "b")}
    new.items = {k: {"id": k} for k in ("c", "d", "e")}
    moved = flow.model_copy(
        update={"trigger": flow.trigger.model_copy(update={"connection": "other"})}
    )

    async def poll(flow: Any, store: Store) -> PollResult:
        return await poll_flow(
            flow,
            Params(),
            client=store,
            pool=db_pool,
            worker="w1",
            clock=Clock(),
            trigger=ItemJoined,
        )

    assert (await poll(flow, old)).baseline
    assert (await poll(flow, old)).events_created == 0
    first = await poll(moved, new)
    assert (first.status, first.baseline, first.events_created) == ("ok", True, 0)
    new.items["f"] = {"id": "f"}
    second = await poll(moved, new)
    assert (second.baseline, second.events_created) == (False, 1)
    rows = await db_pool.fetch("SELECT item_key, connection_id FROM events")
    assert [(r["item_key"], r["connection_id"]) for r in rows] == [("f", "other")]
