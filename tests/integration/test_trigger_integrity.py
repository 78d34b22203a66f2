"""Snapshot triggers against the sandbox: a bad answer or a dropped change loses no event.

A snapshot poll that takes a bad page for the end of the list commits a short snapshot, and
the next poll announces every missing row again under a new occurrence number (a new event
id). These tests feed such answers and check that the poll fails and the state stays put.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from connector.sandbox.state import State
from tests.integration.test_triggers import CASES, Case, Harness, harness


@pytest.fixture
async def h(db_pool: asyncpg.Pool) -> AsyncIterator[Harness]:
    async with harness(db_pool) as running:
        yield running


async def _state(h: Harness, flow: str) -> tuple[Any, ...]:
    """What a poll may change: the stored snapshot, the cursor and the number of events."""
    snapshot = await h.pool.fetch(
        "SELECT item_key, fingerprint FROM snapshot_items WHERE flow_name = $1 ORDER BY 1", flow
    )
    cursor = await h.pool.fetchval("SELECT cursor FROM flow_states WHERE flow_name = $1", flow)
    events = await h.pool.fetchval("SELECT count(*) FROM events WHERE flow_name = $1", flow)
    return [tuple(r) for r in snapshot], cursor, events


LIST = {"mailing_list_id": 1}
EMAILS = "/addressbooks/1/emails"
DEALS = "/crm/v1/deals/get-list"


def _subscribers(state: State) -> None:
    book = state.add_book("Newsletter")
    for i in range(3):
        state.add_subscriber(book.id, f"s{i}@example.com", {})


def _deals(state: State) -> None:
    for n in range(3):
        state.crm.add_deal(f"Deal {n}", state.now() - 3600, price=100.0, contacts=[])


def _campaigns(state: State) -> None:
    book = state.add_book("Newsletter")
    state.add_subscriber(book.id, "s0@example.com", {})
    for i in range(3):
        state.create_campaign([book.id], subject=f"C{i}", draft=True)


@pytest.mark.parametrize(
    ("key", "params", "setup", "path", "fault"),
    [
        ("sendpulse.subscriber_added", LIST, _subscribers, EMAILS, "empty"),
        ("sendpulse.subscriber_added", LIST, _subscribers, EMAILS, "wrapped"),
        ("sendpulse.subscriber_removed", LIST, _subscribers, EMAILS, "empty"),
        ("sendpulse.campaign_status_changed", {}, _campaigns, "/campaigns", "empty"),
        ("sendpulse.crm_deal_stage_changed", {}, _deals, DEALS, "empty"),
    ],
    ids=[
        "added-empty",
        "added-wrapped",
        "removed-empty",
        "campaigns-empty",
        "deals-empty",
    ],
)
async def test_a_bad_list_page_fails_the_poll_and_changes_nothing(
    h: Harness, key: str, params: dict[str, Any], setup: Any, path: str, fault: str
) -> None:
    setup(h.state)
    flow, parsed = h.flow(key, params, start="all")
    assert (await h.poll(flow, parsed)).status == "ok"
    assert (await h.poll(flow, parsed)).events_created == 0
    before = await _state(h, flow.name)
    assert before[0], "the snapshot holds the list"
    h.sb.faults.script(fault, path_prefix=path)
    bad = await h.poll(flow, parsed)
    assert bad.status == "failed"
    assert bad.error is not None and "MalformedResponse" in bad.error
    assert await _state(h, flow.name) == before
    after = await h.poll(flow, parsed)
    assert (after.status, after.events_created) == ("ok", 0), after.error
    snapshot, _, events = await _state(h, flow.name)
    assert (snapshot, events) == (before[0], before[2])


async def test_each_poll_counts_only_its_own_requests(db_pool: asyncpg.Pool) -> None:
    # Two flows and an action's calls share one connection's client, all at once.
    async with harness(db_pool, latency=0.002) as sb:
        big = sb.state.add_book("Big")
        small = sb.state.add_book("Small")
        for i in range(250):
            sb.state.add_subscriber(big.id, f"b{i}@example.com", {})
        sb.state.add_subscriber(small.id, "s@example.com", {})
        flows = [
            sb.flow("sendpulse.subscriber_added", {"mailing_list_id": book.id})
            for book in (big, small)
        ]
        flows[1] = (flows[1][0].model_copy(update={"name": "small"}), flows[1][1])

        async def action() -> None:
            for _ in range(5):
                await sb.client.request("GET", "/addressbooks")

        for _ in range(2):
            before = len(sb.api_paths())
            polls = [sb.poll(flow, params) for flow, params in flows]
            results = (await asyncio.gather(asyncio.gather(*polls), action()))[0]
            paths = sb.api_paths()[before:]
            assert [r.status for r in results] == ["ok", "ok"]
            assert results[0].requests == paths.count(f"/addressbooks/{big.id}/emails") == 3
            assert results[1].requests == paths.count(f"/addressbooks/{small.id}/emails") == 1
        runs = await db_pool.fetch("SELECT flow_name, requests FROM poll_runs ORDER BY id")
        assert sorted((r["flow_name"], r["requests"]) for r in runs) == sorted(
            [(flows[0][0].name, 3), ("small", 1)] * 2
        )


async def test_a_deal_missed_for_one_poll_keeps_its_stage_change(h: Harness) -> None:
    _deals(h.state)
    flow, params = h.flow("sendpulse.crm_deal_stage_changed", {})
    assert (await h.poll(flow, params)).baseline
    # One poll reads a well-formed but empty page: {"data": []} is how deals come.
    h.sb.faults.script("wrapped", path_prefix=DEALS)
    assert (await h.poll(flow, params)).events_created == 0
    h.state.crm.move_deal(2, 2, h.state.now())
    result = await h.poll(flow, params)
    assert (result.status, result.events_created) == ("ok", 1), result.error
    payloads = await h.payloads(flow)
    assert [(p["id"], p["previous_step_id"], p["stepId"]) for p in payloads] == [(2, 1, 2)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.key.split(".")[1])
async def test_every_trigger_fails_on_an_empty_reply_and_keeps_its_state(
    h: Harness, case: Case
) -> None:
    case.setup(h.state)
    flow, params = h.flow(case.key, case.params)
    assert (await h.poll(flow, params)).status == "ok"
    case.change(h.state)
    h.state.clock.advance(600)
    before = await _cursor(h, flow.name)
    seen = len(h.api_paths())
    assert (await h.poll(flow, params)).status == "ok"
    first_call = h.api_paths()[seen]
    # The same poll again, with the first list call answering 200 and no body at all.
    await h.pool.execute(
        "UPDATE flow_states SET cursor = $2 WHERE flow_name = $1", flow.name, before
    )
    await h.pool.execute("DELETE FROM events WHERE flow_name = $1", flow.name)
    h.sb.faults.script("empty", path_prefix=first_call)
    bad = await h.poll(flow, params)
    assert bad.status == "failed" and "MalformedResponse" in (bad.error or ""), bad
    assert await _cursor(h, flow.name) == before
    assert await h.pool.fetchval("SELECT count(*) FROM events") == 0


async def _cursor(h: Harness, flow: str) -> str:
    return str(await h.pool.fetchval("SELECT cursor FROM flow_states WHERE flow_name = $1", flow))
