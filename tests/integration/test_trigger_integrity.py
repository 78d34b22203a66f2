"""Snapshot triggers against the sandbox: a bad answer or a dropped change loses no event.

A snapshot poll that takes a bad page for the end of the list commits a short snapshot, and
the next poll announces every missing row again under a new occurrence number (a new event
id). These tests feed such answers and check that the poll fails and the state stays put.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from connector.sandbox.state import State
from tests.integration.test_triggers import Harness, harness


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
    return [tuple(r) for r in snapshot], json.loads(cursor), events


LIST = {"mailing_list_id": 1}
EMAILS = "/addressbooks/1/emails"


def _subscribers(state: State) -> None:
    book = state.add_book("Newsletter")
    for i in range(3):
        state.add_subscriber(book.id, f"s{i}@example.com", {})


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
    ],
    ids=["added-empty", "added-wrapped", "removed-empty", "campaigns-empty"],
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
