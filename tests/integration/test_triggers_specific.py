"""Trigger-specific promises: the cheaper API paths (proved by counting sandbox requests),
the shortcuts not taken, and the edges of each trigger's cursor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from connector.engine import poll_flow
from connector.plugins import ApiClient, Item
from tests.integration.test_triggers import (
    Harness,
    _book,
    _campaigns,
    _chat,
    _crm,
    _morning,
    _send,
    _smtp_setup,
    _touch_contact,
    harness,
)
from triggers import TRIGGERS
from triggers.sendpulse.subscriber_removed import SubscriberRemoved


@pytest.fixture
async def h(db_pool: asyncpg.Pool) -> AsyncIterator[Harness]:
    async with harness(db_pool) as running:
        yield running


async def test_unsubscribed_asks_only_for_inactive_subscribers(h: Harness) -> None:
    # 250 active and 3 unsubscribed: the full list is 3 pages, the inactive subset is 1.
    _book(h.state, 250, unsubscribed=3)
    unsub, unsub_params = h.flow("sendpulse.subscriber_unsubscribed", {"mailing_list_id": 1})
    status, status_params = h.flow(
        "sendpulse.subscriber_status_changed", {"mailing_list_id": 1, "to": 4}
    )
    await h.poll(unsub, unsub_params)
    await h.poll(status, status_params)
    h.state.unsubscribe(1, "s7@example.com")
    cheap = await h.poll(unsub, unsub_params)
    full = await h.poll(status, status_params)
    assert (cheap.events_created, full.events_created) == (1, 1)
    assert (cheap.requests, full.requests) == (1, 3)
    queries = [r.query for r in h.sb.requests() if r.path.endswith("/emails")]
    assert sum("not_active" in q for q in queries) == 2


async def test_rejoining_subscriber_is_a_second_added_event(h: Harness) -> None:
    _book(h.state)
    flow, params = h.flow("sendpulse.subscriber_added", {"mailing_list_id": 1})
    await h.poll(flow, params)
    h.state.add_subscriber(1, "x@example.com")
    await h.poll(flow, params)
    h.state.remove_subscriber(1, "x@example.com")
    await h.poll(flow, params)
    h.state.add_subscriber(1, "x@example.com")
    await h.poll(flow, params)
    assert [p["email"] for p in await h.payloads(flow)] == ["x@example.com"] * 2


async def test_equal_count_does_not_hide_a_swap(h: Harness) -> None:
    # One leaves and one joins: the list's total is unchanged, both changes must show.
    _book(h.state)
    added, added_params = h.flow("sendpulse.subscriber_added", {"mailing_list_id": 1})
    removed, removed_params = h.flow("sendpulse.subscriber_removed", {"mailing_list_id": 1})
    await h.poll(added, added_params)
    await h.poll(removed, removed_params)
    h.state.remove_subscriber(1, "s0@example.com")
    h.state.add_subscriber(1, "swap@example.com")
    assert (await h.poll(added, added_params)).events_created == 1
    assert (await h.poll(removed, removed_params)).events_created == 1


async def test_unknown_list_is_a_recorded_fatal_error(h: Harness, db_pool: asyncpg.Pool) -> None:
    flow, params = h.flow("sendpulse.subscriber_added", {"mailing_list_id": 99})
    result = await h.poll(flow, params)
    assert result.status == "failed"
    assert "not found" in (result.error or "").lower()
    assert await db_pool.fetchval("SELECT error FROM poll_runs") == result.error


async def test_campaign_created_reads_newest_first_and_stops_early(h: Harness) -> None:
    _campaigns(h.state, 250)
    flow, params = h.flow("sendpulse.campaign_created", {})
    await h.poll(flow, params)
    quiet = await h.poll(flow, params)
    h.state.create_campaign([1], subject="One more")
    one = await h.poll(flow, params)
    # Paging everything would be 3 requests a poll; newest-first stops after the first page.
    assert (quiet.requests, quiet.events_created) == (1, 0)
    assert (one.requests, one.events_created) == (1, 1)
    assert [p["id"] for p in await h.payloads(flow)] == [251]


async def test_campaign_status_changed_without_to_sees_every_step(h: Harness) -> None:
    _campaigns(h.state, 1)
    flow, params = h.flow("sendpulse.campaign_status_changed", {})
    await h.poll(flow, params)
    h.state.clock.advance(120)
    await h.poll(flow, params)
    h.state.clock.advance(3600)
    await h.poll(flow, params)
    h.state.create_campaign([1], subject="Later")
    await h.poll(flow, params)
    steps = [(p["previous_status"], p["status"]) for p in await h.payloads(flow)]
    assert steps == [(0, 2), (2, 3)]


async def test_smtp_sender_filter_goes_to_the_api(h: Harness) -> None:
    _smtp_setup(h.state)
    flow, params = h.flow("sendpulse.smtp_email_sent", {"sender": "shop@example.com"})
    await h.poll(flow, params)
    _send(h.state, "other@example.com", "x@example.com")
    assert (await h.poll(flow, params)).events_created == 0
    queries = [r.query for r in h.sb.requests() if r.path == "/smtp/emails"]
    assert queries and all("sender=shop@example.com" in q for q in queries)


async def test_bounce_just_before_midnight_is_found_after_it(h: Harness) -> None:
    _morning(h.state)
    h.state.clock.advance(22 * 3600 + 55 * 60)  # 23:55
    flow, params = h.flow("sendpulse.smtp_email_bounced", {})
    await h.poll(flow, params)
    h.state.clock.advance(180)  # 23:58
    _send(h.state, "shop@example.com", "late@bounce.example.com")
    h.state.clock.advance(420)  # 00:05 the next day
    result = await h.poll(flow, params)
    assert (result.events_created, result.requests) == (1, 2)
    assert [p["email_to"] for p in await h.payloads(flow)] == ["late@bounce.example.com"]


def test_smtp_params_refuse_a_malformed_address() -> None:
    trigger = TRIGGERS.get("sendpulse.smtp_email_sent")
    assert trigger is not None
    with pytest.raises(ValueError, match="pattern"):
        trigger.Params.model_validate({"sender": "not-an-address"})
    with pytest.raises(ValueError, match="Extra inputs"):
        trigger.Params.model_validate({"senders": "a@b.io"})


async def test_crm_deal_created_asks_only_for_newer_ids(h: Harness) -> None:
    _crm(h.state)
    flow, params = h.flow("sendpulse.crm_deal_created", {})
    await h.poll(flow, params)
    await h.poll(flow, params)
    bodies = [r for r in h.sb.requests() if r.path == "/crm/v1/deals/get-list"]
    assert len(bodies) == 2
    quiet = await h.poll(flow, params)
    # A quiet poll is one request whose answer is empty (the filter is id gt <cursor>).
    assert (quiet.requests, quiet.items_seen) == (1, 0)


async def test_crm_contact_updated_reads_only_recent_updates(h: Harness) -> None:
    # 250 contacts last changed three days ago: updateFrom keeps them out of every poll.
    for n in range(250):
        h.state.crm.add_contact(f"C{n}", "X", h.state.now() - 3 * 86_400 + n)
    flow, params = h.flow("sendpulse.crm_contact_updated", {})
    await h.poll(flow, params)
    _touch_contact(h.state, 7)
    result = await h.poll(flow, params)
    assert (result.events_created, result.requests) == (1, 1)


async def test_chatbot_quiet_account_is_one_request(h: Harness) -> None:
    _chat(h.state)
    flow, params = h.flow("sendpulse.chatbot_message_received", {})
    await h.poll(flow, params)
    h.state.clock.advance(600)
    quiet = await h.poll(flow, params)
    assert (quiet.requests, quiet.events_created) == (1, 0)


class MissesOneRow(SubscriberRemoved):
    """subscriber_removed whose paging loses one row, as a list shifting under offsets can."""

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        async for item in super().poll(client, since):
            if item["email"] != "s1@example.com":
                yield item


async def test_a_row_lost_by_paging_is_not_a_removal(h: Harness, db_pool: asyncpg.Pool) -> None:
    _book(h.state)
    flow, params = h.flow("sendpulse.subscriber_removed", {"mailing_list_id": 1})

    async def poll(trigger: Any) -> Any:
        return await poll_flow(
            flow, params, client=h.client, pool=db_pool, worker="w", trigger=trigger
        )

    await poll(SubscriberRemoved)
    h.state.remove_subscriber(1, "s2@example.com")
    shifted = await poll(MissesOneRow)
    # Two candidates, two checks; only the one really gone is an event.
    assert (shifted.events_created, shifted.requests) == (1, 3)
    assert await h.payloads(flow) == [{"email": "s2@example.com", "mailing_list_id": 1}]
    assert (await poll(SubscriberRemoved)).events_created == 0


class DeletesWhilePaging:
    """A client through which the list loses rows ahead of the reader between two pages."""

    def __init__(self, inner: Any, state: Any, deletions: dict[int, list[str]]) -> None:
        self.inner = inner
        self.state = state
        self.deletions = deletions
        self.calls = 0

    @property
    def requests_made(self) -> int:
        return int(self.inner.requests_made)

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.calls += 1
        for email in self.deletions.get(self.calls, []):
            self.state.remove_subscriber(1, email)
        return await self.inner.request(method, path, **kwargs)

    def iter_offset(self, path: str, **kwargs: Any) -> Any:
        return self.inner.iter_offset(path, **kwargs)


@pytest.mark.parametrize("deleted", [1, 3, 150])
async def test_rows_deleted_during_paging_lose_nothing(
    h: Harness, db_pool: asyncpg.Pool, deleted: int
) -> None:
    _book(h.state, 450)
    added, added_params = h.flow("sendpulse.subscriber_added", {"mailing_list_id": 1})
    removed, removed_params = h.flow("sendpulse.subscriber_removed", {"mailing_list_id": 1})
    await h.poll(added, added_params)
    await h.poll(removed, removed_params)
    # Before the 3rd page is read, rows of the first pages go: every later row moves up.
    gone = [f"s{n}@example.com" for n in range(10, 10 + deleted)]
    for flow, params in ((added, added_params), (removed, removed_params)):
        for email in gone:
            h.state.add_subscriber(1, email)
        client = DeletesWhilePaging(h.client, h.state, {3: gone})
        await poll_flow(
            flow,
            params,
            trigger=TRIGGERS[flow.trigger.type],
            client=client,  # type: ignore[arg-type]
            pool=db_pool,
            worker="w",
        )
    # Nothing was added; exactly the deleted rows were removed, seen by both flows alike.
    assert await h.payloads(added) == []
    assert sorted(p["email"] for p in await h.payloads(removed)) == sorted(gone)
    assert (await h.poll(added, added_params)).events_created == 0
    assert (await h.poll(removed, removed_params)).events_created == 0


async def test_losing_every_anchor_fails_the_poll_and_the_next_one_is_exact(
    h: Harness, db_pool: asyncpg.Pool
) -> None:
    _book(h.state, 450)
    flow, params = h.flow("sendpulse.subscriber_removed", {"mailing_list_id": 1})
    await h.poll(flow, params)
    # The last 20 rows read before the 3rd page (rows 179..198) all go: no anchor is left.
    gone = [f"s{n}@example.com" for n in range(179, 199)]
    client = DeletesWhilePaging(h.client, h.state, {3: gone})
    failed = await poll_flow(
        flow,
        params,
        trigger=TRIGGERS[flow.trigger.type],
        client=client,  # type: ignore[arg-type]
        pool=db_pool,
        worker="w",
    )
    assert failed.status == "failed"
    assert "ListShifted" in (failed.error or "")
    assert await h.payloads(flow) == []
    retried = await h.poll(flow, params)
    assert retried.events_created == len(gone)
