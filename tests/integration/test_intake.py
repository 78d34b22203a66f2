"""SendPulse webhook intake: the sandbox posts its real batches to the worker's route."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiolimiter import AsyncLimiter

from connector.auth.tokens import StaticKey
from connector.catalog import CATALOG
from connector.config import Config, parse
from connector.engine import PollResult, poll_flow
from connector.http_client.api_retry import RetryPolicy
from connector.intake import WebhookIntake
from connector.providers.fakes import flow_yaml
from connector.providers.sendpulse_client import SendPulseClient
from connector.web import WebState, build_app, serve
from tests.integration.test_triggers import Harness, harness

TOKEN = "intake-token-0123456789abcdef"


def config_for(base_url: str) -> Config:
    lists = {"mailing_list_id": 1}
    document: dict[str, Any] = {
        "connections": {
            "main": {
                "client_id": "sandbox-client",
                "client_secret": "sandbox-secret",
                "base_url": base_url,
                "webhook_token": TOKEN,
            }
        },
        "flows": [
            {
                "name": name,
                "trigger": {"type": f"sendpulse.{trigger}", "params": params},
                "actions": [{"type": "log"}],
            }
            for name, trigger, params in [
                ("added", "subscriber_added", dict(lists)),
                ("removed", "subscriber_removed", dict(lists)),
                ("unsubscribed", "subscriber_unsubscribed", dict(lists)),
                ("status", "subscriber_status_changed", dict(lists)),
                ("campaigns", "campaign_status_changed", {}),
                ("other-list", "subscriber_added", {"mailing_list_id": 2}),
            ]
        ],
    }
    return parse(flow_yaml(document), CATALOG, "flows.yaml", env={})


@dataclass
class Rig:
    h: Harness
    config: Config
    url: str
    polled_now: list[str]

    async def poll(self, name: str) -> PollResult:
        plan = self.config.plan(name)
        assert plan is not None
        return await poll_flow(
            plan.flow,
            plan.params,
            trigger=plan.trigger,
            client=self.h.client,
            pool=self.h.pool,
            worker="w1",
        )

    async def poll_all(self) -> dict[str, int]:
        return {f.name: (await self.poll(f.name)).events_created for f in self.config.flows}

    async def events(self) -> list[asyncpg.Record]:
        return await self.h.pool.fetch(
            "SELECT flow_name, item_key, source, payload FROM events ORDER BY flow_name, item_key"
        )


@pytest.fixture
async def rig(db_pool: asyncpg.Pool) -> AsyncIterator[Rig]:
    async with harness(db_pool, frozen_clock=True) as h:
        h.sb.state.add_book("Newsletter")
        h.sb.state.add_book("Other")
        h.sb.state.add_subscriber(1, "old@example.com", {"name": "Old"})
        config = config_for(h.sb.base_url)
        polled: list[str] = []
        intake = WebhookIntake(
            db_pool, lambda: config, "w1", client=lambda _name: h.client, poll_now=polled.append
        )
        app = build_app(WebState(pool=db_pool, scheduler_running=lambda: True), intake.routes())
        runner = await serve(app, "127.0.0.1", 0)
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/hooks/sendpulse/main/{TOKEN}"
        h.sb.state.webhooks.register(
            url, ["new_emails", "unsubscribe", "delete", "task_status_update"]
        )
        rig = Rig(h, config, url, polled)
        await rig.poll_all()  # baselines
        try:
            yield rig
        finally:
            await runner.cleanup()


async def post(url: str, body: bytes | str, **headers: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        data = io.BytesIO(body.encode() if isinstance(body, str) else body)
        async with session.post(url, data=data, headers=headers) as resp:
            try:
                return resp.status, await resp.json()
            except (aiohttp.ContentTypeError, ValueError):
                return resp.status, await resp.text()


async def test_new_subscriber_by_webhook_then_poll_adds_nothing(rig: Rig) -> None:
    rig.h.sb.state.add_subscriber(1, "New@Example.com", {"name": "Nia"})
    [delivery] = await rig.h.sb.flush_webhooks()
    assert delivery.status == 200
    events = await rig.events()
    assert [(e["flow_name"], e["item_key"], e["source"]) for e in events] == [
        ("added", "new@example.com", "webhook")
    ]
    created = await rig.poll_all()
    assert created == dict.fromkeys(created, 0)
    assert len(await rig.events()) == 1


async def test_a_change_polled_first_is_not_doubled_by_its_webhook(rig: Rig) -> None:
    rig.h.sb.state.add_subscriber(1, "first@example.com", {})
    assert (await rig.poll("added")).events_created == 1
    [delivery] = await rig.h.sb.flush_webhooks()
    assert delivery.status == 200
    events = await rig.events()
    assert [(e["item_key"], e["source"]) for e in events] == [("first@example.com", "poll")]


async def test_unsubscribe_and_delete_feed_their_flows(rig: Rig) -> None:
    rig.h.sb.state.unsubscribe(1, "old@example.com")
    await rig.h.sb.flush_webhooks()
    rig.h.sb.state.remove_subscriber(1, "old@example.com")
    await rig.h.sb.flush_webhooks()
    events = {(e["flow_name"], e["source"]) for e in await rig.events()}
    assert events == {("unsubscribed", "webhook"), ("status", "webhook"), ("removed", "webhook")}
    # The polls see the same changes and add nothing.
    created = await rig.poll_all()
    assert sum(created.values()) == 0


async def test_a_flow_before_its_baseline_is_left_to_the_poll(rig: Rig) -> None:
    await rig.h.pool.execute("DELETE FROM flow_states WHERE flow_name = 'added'")
    await rig.h.pool.execute("DELETE FROM snapshot_items WHERE flow_name = 'added'")
    rig.h.sb.state.add_subscriber(1, "early@example.com", {})
    rig.h.sb.state.add_subscriber(2, "elsewhere@example.com", {})
    await rig.h.sb.flush_webhooks()
    # Only the flow on list 2 (which has its baseline) takes its webhook.
    assert [(e["flow_name"], e["item_key"]) for e in await rig.events()] == [
        ("other-list", "elsewhere@example.com")
    ]
    baseline = await rig.poll("added")
    assert baseline.baseline
    assert baseline.events_created == 0
    assert (await rig.poll("other-list")).events_created == 0


async def test_campaign_status_webhook_polls_campaign_flows_now(rig: Rig) -> None:
    status, body = await post(
        rig.url, '[{"event": "task_status_update", "task_id": 5, "book_id": 1, "status": "sent"}]'
    )
    assert status == 200, body
    assert rig.polled_now == ["campaigns"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not JSON"),
        (b'"a string"', 400, "JSON array"),
        (b'[{"email": "x@y.io"}]', 400, "'event' name"),
        (b'[{"event": "new_emails", "book_id": 1}]', 400, "no valid 'email'"),
        (b'[{"event": "new_emails", "email": "x@y.io", "book_id": "one"}]', 400, "numeric"),
        (
            b'[{"event": "new_emails", "email": "ok@y.io", "book_id": 1},'
            b' {"event": "delete", "email": "x@y.io"}]',
            400,
            "element 1",
        ),
        (b"[" + b'{"event": "open"},' * 70000 + b'{"event": "open"}]', 413, "larger"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (b'[{"event": "new_emails", "email": "x@y.io", "book_id": 1e400}]', 400, "out of range"),
        (b"[1e400]", 400, "out of range"),
        (b'[{"event": "new_emails", "email": "x@y.io", "book_id": NaN}]', 400, "not JSON"),
        (
            b'[{"event": "new_emails", "email": "x@y.io", "book_id": 1,'
            b' "variables": {"n": -Infinity}}]',
            400,
            "not JSON",
        ),
        (b'[{"event": "new_emails", "email": "a\\u0000@y.io", "book_id": 1}]', 400, "NUL"),
        (b'[{"event": "new_emails", "email": "a\\ud800@y.io", "book_id": 1}]', 400, "surrogate"),
    ],
    ids=[
        "not-json",
        "not-array",
        "no-event",
        "no-email",
        "bad-book",
        "one-bad-of-two",
        "huge",
        "deep",
        "overflowing-book",
        "overflowing-number",
        "nan",
        "infinity",
        "nul",
        "lone-surrogate",
    ],
)
async def test_bad_bodies_are_refused_with_no_side_effect(
    rig: Rig, body: bytes, status: int, words: str
) -> None:
    got, answer = await post(rig.url, body, **{"Content-Type": "application/json"})
    assert got == status
    assert words in answer["error"]
    assert await rig.events() == []
    assert (
        await rig.h.pool.fetchval("SELECT count(*) FROM snapshot_items WHERE item_key = 'ok@y.io'")
        == 0
    )


async def test_wrong_token_or_connection_is_a_plain_404(rig: Rig) -> None:
    body = '[{"event": "new_emails", "email": "x@y.io", "book_id": 1}]'
    for url in (
        rig.url.replace(TOKEN, "wrong-token-0123456789abcdef"),
        rig.url.replace("/main/", "/nope/"),
    ):
        status, answer = await post(url, body)
        assert status == 404
        assert answer == {"error": "not found"}
    assert await rig.events() == []


async def test_a_poll_holding_the_connection_defers_the_batch(rig: Rig) -> None:
    await rig.h.pool.execute(
        "INSERT INTO leases (resource, owner, expires_at)"
        " VALUES ('poll:main', 'busy', now() + interval '1 hour')"
    )
    rig.h.sb.state.add_subscriber(1, "x@y.io", {}, webhook=False)
    slow = WebhookIntake(
        rig.h.pool, lambda: rig.config, "w2", client=lambda _name: rig.h.client, lease_wait=0.2
    )
    app = web.Application()
    app.add_routes(slow.routes())
    runner = await serve(app, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks/sendpulse/main/{TOKEN}"
        status, body = await post(url, '[{"event": "new_emails", "email": "x@y.io", "book_id": 1}]')
    finally:
        await runner.cleanup()
    assert status == 202
    assert body == {"deferred": 1}
    assert await rig.events() == []


async def test_a_slow_chunked_body_is_read_whole(rig: Rig) -> None:
    rig.h.sb.state.add_subscriber(1, "chunked@example.com", {})
    element = b'{"event": "open", "email": "x@y.io", "task_id": 1},'
    real = b'{"event": "new_emails", "email": "chunked@example.com", "book_id": 1}'

    async def slowly() -> AsyncIterator[bytes]:
        yield b"["
        for _ in range(2000):  # about 100 kB, sent in many small pieces
            yield element
            await asyncio.sleep(0)
        yield real + b"]"

    async with aiohttp.ClientSession() as session:
        async with session.post(rig.url, data=slowly()) as resp:
            status, body = resp.status, await resp.json()
    assert status == 200, body
    assert body == {"received": 2001, "events_created": 1}


async def test_a_flow_moved_to_another_connection_waits_for_its_new_baseline(rig: Rig) -> None:
    # The stored state belongs to another account: its snapshot says nothing about this one.
    await rig.h.pool.execute("UPDATE flow_states SET connection_id = 'old-account'")
    rig.h.sb.state.add_subscriber(1, "moved@example.com", {})
    [delivery] = await rig.h.sb.flush_webhooks()
    assert delivery.status == 200
    assert await rig.events() == []


async def webhook_then_poll(rig: Rig, change: Callable[[], object]) -> list[tuple[Any, ...]]:
    """The events a webhook makes for ``change``, then those a poll makes from the same state.

    Between the two the database goes back to what it held before the change, so the poll
    sees exactly the change the webhook reported.
    """
    before = await rig.h.pool.fetch("SELECT flow_name, item_key, fingerprint FROM snapshot_items")
    change()
    [delivery] = await rig.h.sb.flush_webhooks()
    assert delivery.status == 200
    made = await rig.h.pool.fetch(
        "SELECT id, flow_name, item_key, payload, source FROM events ORDER BY id"
    )
    made_state = await recorded_state(rig)
    await rig.h.pool.execute("DELETE FROM deliveries; DELETE FROM events;")
    await rig.h.pool.execute("DELETE FROM snapshot_items")
    await rig.h.pool.copy_records_to_table("snapshot_items", records=[tuple(r) for r in before])
    await rig.poll_all()
    polled = await rig.h.pool.fetch(
        "SELECT id, flow_name, item_key, payload, source FROM events ORDER BY id"
    )
    assert [r["source"] for r in made] == ["webhook"] * len(made)
    assert [r["source"] for r in polled] == ["poll"] * len(polled)
    # Everything a receiver sees: the id, the flow, the item and every field of the payload.
    webhook_side = [(r["id"], r["flow_name"], r["item_key"], r["payload"]) for r in made]
    poll_side = [(r["id"], r["flow_name"], r["item_key"], r["payload"]) for r in polled]
    assert webhook_side == poll_side
    # The same deliveries, and the snapshots moved alike (both paths record through
    # connector.record_changes).
    assert await recorded_state(rig) == made_state
    return webhook_side


async def recorded_state(rig: Rig) -> tuple[list[Any], list[Any]]:
    deliveries = await rig.h.pool.fetch(
        "SELECT id, event_id, action_index, state FROM deliveries ORDER BY id"
    )
    snapshot = await rig.h.pool.fetch(
        "SELECT flow_name, item_key, fingerprint FROM snapshot_items ORDER BY flow_name, item_key"
    )
    return [tuple(r) for r in deliveries], [tuple(r) for r in snapshot]


async def test_a_delete_by_webhook_equals_the_polled_removal(rig: Rig) -> None:
    events = await webhook_then_poll(
        rig, lambda: rig.h.sb.state.remove_subscriber(1, "old@example.com")
    )
    [(_id, flow, key, payload)] = events
    assert (flow, key) == ("removed", "old@example.com")
    assert payload == {"email": "old@example.com", "mailing_list_id": 1}


async def test_a_resubscribe_by_webhook_leaves_the_unsubscribed_view_as_the_poll_does(
    rig: Rig,
) -> None:
    rig.h.sb.state.unsubscribe(1, "old@example.com")
    await rig.h.sb.flush_webhooks()
    await rig.poll_all()
    await rig.h.pool.execute("DELETE FROM deliveries; DELETE FROM events;")
    before = await rig.h.pool.fetch("SELECT flow_name, item_key, fingerprint FROM snapshot_items")
    # Active again: out of the inactive-only flow's list (a removal it emits nothing for),
    # a status change for the status flow.
    rig.h.sb.state.set_status(1, "old@example.com", 1)
    body = '[{"event": "new_emails", "email": "old@example.com", "book_id": 1}]'
    assert (await post(rig.url, body))[0] == 200
    made = await rig.events()
    made_state = await recorded_state(rig)
    await rig.h.pool.execute("DELETE FROM deliveries; DELETE FROM events;")
    await rig.h.pool.execute("DELETE FROM snapshot_items")
    await rig.h.pool.copy_records_to_table("snapshot_items", records=[tuple(r) for r in before])
    await rig.poll_all()
    polled = await rig.events()
    assert [(e["flow_name"], e["item_key"], e["source"]) for e in made] == [
        ("status", "old@example.com", "webhook")
    ]
    assert [e["payload"] for e in made] == [e["payload"] for e in polled]
    assert await recorded_state(rig) == made_state
    unsubscribed = await rig.h.pool.fetch(
        "SELECT item_key FROM snapshot_items WHERE flow_name = 'unsubscribed'"
    )
    assert unsubscribed == []


async def test_a_joined_subscriber_by_webhook_equals_the_polled_one_field_for_field(
    rig: Rig,
) -> None:
    events = await webhook_then_poll(
        rig,
        lambda: rig.h.sb.state.add_subscriber(
            1, "Nia@Example.com", {"name": "Nia"}, phone="380501234567"
        ),
    )
    [(_id, flow, key, payload)] = events
    assert (flow, key) == ("added", "nia@example.com")
    assert payload == {
        "email": "nia@example.com",
        "mailing_list_id": 1,
        "status": 1,
        "status_explain": "Active",
        "phone": "380501234567",
        "variables": {"name": "Nia"},
    }


async def test_an_unsubscribe_by_webhook_equals_the_polled_one_field_for_field(rig: Rig) -> None:
    events = await webhook_then_poll(rig, lambda: rig.h.sb.state.unsubscribe(1, "old@example.com"))
    payloads = {flow: payload for _id, flow, _key, payload in events}
    assert set(payloads) == {"unsubscribed", "status"}
    assert payloads["unsubscribed"] == {
        "email": "old@example.com",
        "mailing_list_id": 1,
        "status": 4,
        "status_explain": "Unsubscribed",
        "phone": None,
        "variables": {"name": "Old"},
    }
    assert payloads["status"] == {**payloads["unsubscribed"], "previous_status": 1}


async def test_a_subscriber_gone_before_the_lookup_is_left_to_the_poll(rig: Rig) -> None:
    rig.h.sb.state.add_subscriber(1, "brief@example.com", {})
    rig.h.sb.state.remove_subscriber(1, "brief@example.com")
    deliveries = await rig.h.sb.flush_webhooks()
    assert [d.status for d in deliveries] == [200]
    # Joined and left again: the lookup finds nothing to add, the delete nothing to remove.
    assert await rig.events() == []
    assert sum((await rig.poll_all()).values()) == 0


async def test_a_failing_lookup_defers_the_batch_and_writes_nothing(rig: Rig) -> None:
    rig.h.sb.state.add_subscriber(1, "later@example.com", {}, webhook=False)
    key = rig.h.sb.state.auth.add_api_key(rig.h.sb.client_id)
    async with aiohttp.ClientSession() as http:
        once = SendPulseClient(
            connection_id="main",
            session=http,
            base_url=rig.h.sb.base_url,
            limiter=AsyncLimiter(1000, 1),
            auth=StaticKey(connection_id="main", provider="sendpulse", key=key, pool=rig.h.pool),
            retry=RetryPolicy(attempts=1),
        )
        intake = WebhookIntake(rig.h.pool, lambda: rig.config, "w2", client=lambda _name: once)
        app = web.Application()
        app.add_routes(intake.routes())
        runner = await serve(app, "127.0.0.1", 0)
        try:
            url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks/sendpulse/main/{TOKEN}"
            rig.h.sb.faults.script("500", path_prefix="/addressbooks/1/emails/later")
            status, body = await post(
                url, '[{"event": "new_emails", "email": "later@example.com", "book_id": 1}]'
            )
        finally:
            await runner.cleanup()
    assert (status, body) == (202, {"deferred": 1})
    assert await rig.events() == []
    assert (
        await rig.h.pool.fetchval(
            "SELECT count(*) FROM snapshot_items WHERE item_key = 'later@example.com'"
        )
        == 0
    )
    # The poll is the safety net: it makes the event the webhook could not.
    assert (await rig.poll("added")).events_created == 1


async def test_the_same_batch_twice_makes_its_events_once(rig: Rig) -> None:
    rig.h.sb.state.add_subscriber(1, "twice@example.com", {}, webhook=False)
    body = '[{"event": "new_emails", "email": "twice@example.com", "book_id": 1}]'
    first = await post(rig.url, body)
    second = await post(rig.url, body)
    assert first == (200, {"received": 1, "events_created": 1})
    assert second == (200, {"received": 1, "events_created": 0})
    assert [(e["flow_name"], e["item_key"]) for e in await rig.events()] == [
        ("added", "twice@example.com")
    ]


async def test_the_same_email_twice_in_one_batch_is_one_event(rig: Rig) -> None:
    rig.h.sb.state.add_subscriber(1, "dup@example.com", {}, webhook=False)
    element = '{"event": "new_emails", "email": "DUP@example.com", "book_id": 1}'
    status, body = await post(rig.url, f"[{element}, {element}]")
    assert (status, body) == (200, {"received": 2, "events_created": 1})
    assert len(await rig.events()) == 1


async def test_unsubscribe_from_all_lists_takes_the_status_the_api_reports(rig: Rig) -> None:
    rig.h.sb.state.set_status(1, "old@example.com", 6)
    body = '[{"event": "unsubscribe", "email": "old@example.com", "book_id": 1, "from_all": 1}]'
    assert (await post(rig.url, body))[0] == 200
    payloads = {e["flow_name"]: e["payload"] for e in await rig.events()}
    assert payloads["unsubscribed"]["status"] == 6
    assert payloads["unsubscribed"]["status_explain"] == "Unsubscribed from all"
    assert payloads["status"]["previous_status"] == 1
    assert sum((await rig.poll_all()).values()) == 0


async def test_a_subscriber_who_leaves_and_joins_again_joins_twice(rig: Rig) -> None:
    rig.h.sb.state.add_subscriber(1, "back@example.com", {})
    await rig.h.sb.flush_webhooks()
    rig.h.sb.state.remove_subscriber(1, "back@example.com")
    await rig.h.sb.flush_webhooks()
    rig.h.sb.state.add_subscriber(1, "back@example.com", {})
    await rig.h.sb.flush_webhooks()
    events = [(e["flow_name"], e["item_key"]) for e in await rig.events()]
    assert sorted(events) == [
        ("added", "back@example.com"),
        ("added", "back@example.com"),
        ("removed", "back@example.com"),
    ]
    assert sum((await rig.poll_all()).values()) == 0


async def test_a_webhook_makes_the_next_poll_diff_even_if_the_list_looks_unchanged(
    rig: Rig,
) -> None:
    # The webhook puts the subscriber into the snapshot; the list the API shows next is the
    # one the last poll read, whose digest must no longer vouch for the snapshot.
    rig.h.sb.state.add_subscriber(1, "brief@example.com", {})
    [delivery] = await rig.h.sb.flush_webhooks()
    assert delivery.status == 200
    rig.h.sb.state.books[1].remove("brief@example.com")
    assert (await rig.poll("added")).events_created == 0
    # Back again: a second joining, which only a snapshot that saw the leaving can tell.
    rig.h.sb.state.add_subscriber(1, "brief@example.com", {}, webhook=False)
    assert (await rig.poll("added")).events_created == 1
    events = await rig.events()
    assert [(e["item_key"], e["source"]) for e in events if e["flow_name"] == "added"] == [
        ("brief@example.com", "webhook"),
        ("brief@example.com", "poll"),
    ]
