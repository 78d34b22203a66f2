"""The dispatcher's other paths: NOTIFY wake-up, actions that fail in each way, scopes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, ClassVar

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from connector.catalog import CATALOG
from connector.config import parse
from connector.dispatch import Claimed, Dispatcher
from connector.egress import EgressPolicy, guarded_session
from connector.errors import ConfigInvalid
from connector.plugins import Action, ActionContext, ActionResult, NoParams, StoredEvent
from connector.sandbox.harness import Sandbox
from tests.integration.dispatch_support import (
    T0,
    FakeClock,
    Received,
    attempts,
    delivery,
    flow_file,
    insert_event,
    receiver,
    standing_in,
    webhook_flow,
)
from tests.integration.test_actions_sendpulse import deliver


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with guarded_session(EgressPolicy(["127.0.0.1/32"])) as session:
        yield session


async def wait_for(event: asyncio.Event, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), 30)
    except TimeoutError:
        raise AssertionError(f"gave up after 30 s waiting for {what}") from None


class Probe(Dispatcher):
    """A dispatcher that says when each claim has been made."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.claims = 0
        self.claimed = asyncio.Event()

    async def claim(self, limit: int) -> list[Claimed]:
        got = await super().claim(limit)
        self.claims += 1
        self.claimed.set()
        return got


async def test_notify_wakes_a_dispatcher_idle_for_an_hour(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    arrived = asyncio.Event()
    async with receiver() as rx:

        def answer(_got: Received) -> web.StreamResponse:
            arrived.set()
            return web.Response(text="ok")

        rx.respond = answer
        config = flow_file(webhook_flow("woken", rx.url))
        # An idle wait of an hour: only the insert's NOTIFY can bring the next claim.
        worker = Probe(db_pool, config, http=http, worker_id="idle", idle_wait=3600)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await wait_for(worker.claimed, "the dispatcher's first (empty) claim")
            assert worker.claims == 1
            async with db_pool.acquire() as conn:
                [did] = await insert_event(
                    conn, "woken", "w-1", {"email": "w@y.z"}, at=T0 - timedelta(days=1)
                )
            await wait_for(arrived, "the delivery after the insert's NOTIFY")
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
        assert worker.claims >= 2
        assert rx.ids() == [str(did)]


class Crashing(Action[NoParams]):
    """Stands in for `log`: an action with a bug in it."""

    key: ClassVar[str] = "log"
    summary = "crashes"

    async def run(self, ctx: ActionContext, event: StoredEvent, params: NoParams) -> ActionResult:
        raise KeyError("a bug in the action")


class Hanging(Action[NoParams]):
    """Stands in for `log`: an action that never returns."""

    key: ClassVar[str] = "log"
    summary = "hangs"

    async def run(self, ctx: ActionContext, event: StoredEvent, params: NoParams) -> ActionResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


LOG_FLOW = """\
- name: logged
  trigger: {type: sendpulse.subscriber_added, params: {mailing_list_id: 1}}
  retry_schedule: [5s, 5m]
  actions: [{type: log}]
"""


async def test_an_action_that_raises_is_retried_and_logged_loudly(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    worker = Dispatcher(
        db_pool,
        flow_file(LOG_FLOW, catalog=standing_in(Crashing)),
        http=http,
        clock=clock,
        worker_id="w1",
    )
    async with db_pool.acquire() as conn:
        [did] = await insert_event(conn, "logged", "c-1", {"email": "c@y.z"}, actions=["log"])
    with capture_logs() as logs:
        assert await worker.run_once() == 1
    async with db_pool.acquire() as conn:
        row = await delivery(conn, did)
        [attempt] = await attempts(conn, did)
    # Not dead: a bug must not lose the event.
    assert (row["state"], row["attempt"]) == ("pending", 1), row["last_error"]
    assert row["next_attempt_at"] > T0
    assert row["last_error"] == "KeyError: 'a bug in the action'"
    assert attempt["outcome"] == "retry"
    assert [e["event"] for e in logs if e["log_level"] in ("error", "critical")] == [
        "action_crashed"
    ]


async def test_an_action_past_its_time_budget_is_cut_off_and_retried(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    # A 2 s lease leaves the action a budget of 1 s (half the lease when it is this short).
    worker = Dispatcher(
        db_pool,
        flow_file(LOG_FLOW, catalog=standing_in(Hanging)),
        http=http,
        clock=FakeClock(),
        worker_id="w1",
        lease=timedelta(seconds=2),
    )
    assert worker.budget == 1.0
    async with db_pool.acquire() as conn:
        [did] = await insert_event(conn, "logged", "h-1", {"email": "h@y.z"}, actions=["log"])
    assert await asyncio.wait_for(worker.run_once(), 30) == 1
    async with db_pool.acquire() as conn:
        row = await delivery(conn, did)
    assert (row["state"], row["attempt"]) == ("pending", 1)
    assert row["last_error"] == "the action took longer than 1s"


async def test_a_template_that_fails_to_render_is_dead_and_sends_nothing(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    async with receiver() as rx:
        # `variables` is a declared field, so the file loads; this event has no `nope` in it.
        config = flow_file(webhook_flow("templated", rx.url + "/{{ event.variables.nope }}"))
        worker = Dispatcher(db_pool, config, http=http, clock=FakeClock(), worker_id="w1")
        async with db_pool.acquire() as conn:
            [did] = await insert_event(
                conn, "templated", "t-1", {"email": "t@y.z", "variables": {"name": "T"}}
            )
        assert await worker.run_once() == 1
        async with db_pool.acquire() as conn:
            row = await delivery(conn, did)
        assert (row["state"], row["attempt"]) == ("dead", 1)
        assert "nope" in row["last_error"]
        assert rx.received == []


async def test_the_campaign_limit_791_makes_the_delivery_wait(
    sb: Sandbox, db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    book = sb.state.add_book("Newsletter")
    sb.state.add_subscriber(book.id, "ann@example.com", {})
    for n in range(4):  # the hour's four API campaigns are spent
        sb.state.create_campaign([book.id], subject=f"Earlier {n}")
    action = {
        "type": "sendpulse.create_campaign",
        "mailing_list_id": book.id,
        "sender_name": "Sandbox",
        "sender_email": "sender@example.com",
        "subject": "One more",
        "html": "<p>Hi</p>",
    }
    async with aiohttp.ClientSession() as plain:
        [row] = await deliver(sb, db_pool, plain, action)
    assert (row["state"], row["attempt"]) == ("pending", 1)
    assert "791" in row["last_error"] or "4 API campaigns an hour" in row["last_error"]
    # It waits for the hour to free up (at least 15 minutes), not the 5 s of its schedule.
    async with db_pool.acquire() as conn:
        due = await conn.fetchval(
            "SELECT next_attempt_at - updated_at FROM deliveries WHERE id = $1", row["id"]
        )
    assert due >= timedelta(minutes=15)
    assert len(sb.state.campaigns.items) == 4
    posted = [r for r in sb.requests() if r.path == "/campaigns" and r.method == "POST"]
    assert [r.status for r in posted] == [400]  # asked once, not retried within the request


SCOPED = """
connections:
  main:
    client_id: id
    client_secret: a-long-secret
    scopes: {scopes}
flows:
  - name: texts
    trigger:
      type: sendpulse.mailing_list_created
    actions:
      - type: sendpulse.send_sms
        sender: Shop
        phone: "380501234567"
        body: hello
"""


def test_an_action_needing_a_scope_the_connection_lacks_is_refused() -> None:
    with pytest.raises(ConfigInvalid) as caught:
        parse(SCOPED.format(scopes="[emails]"), CATALOG, "flows.yaml")
    message = str(caught.value)
    assert "needs the 'sms' scope" in message
    assert "flows[0].actions[0]" in message


def test_an_action_whose_scope_is_granted_loads() -> None:
    config = parse(SCOPED.format(scopes="[emails, sms]"), CATALOG, "flows.yaml")
    assert [a.type for a in config.flows[0].actions] == ["sendpulse.send_sms"]
