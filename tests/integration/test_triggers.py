"""Every SendPulse trigger against the sandbox, through the real client, on a real Postgres.

For each trigger: the first run records a baseline and emits nothing; one change made in the
sandbox gives exactly one event with the documented payload; a second poll with no change
gives nothing and makes the fewest requests the API allows; ``start: all`` emits what exists,
capped by ``max_first_run_events``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiolimiter import AsyncLimiter

from connector.auth.tokens import StaticKey
from connector.config import ActionSpec, Flow, TriggerSpec
from connector.engine import Poller, PollResult, poll_flow
from connector.plugins import PluginParams, Trigger
from connector.providers.sendpulse_client import SendPulseClient
from connector.sandbox.channels import SmsCampaign
from connector.sandbox.clock import fmt_chatbot
from connector.sandbox.harness import Sandbox, start_sandbox
from connector.sandbox.state import State
from triggers import TRIGGERS


class Harness:
    """One sandbox account, one client, one flow: poll it and read back what was recorded."""

    def __init__(self, sb: Sandbox, client: SendPulseClient, pool: asyncpg.Pool) -> None:
        self.sb = sb
        self.client = client
        self.pool = pool
        # One poller, as a worker has: polls of two flows of one connection, at once, share
        # its lease instead of each releasing it under the other.
        self.poller = Poller()

    @property
    def state(self) -> State:
        return self.sb.state

    def flow(self, key: str, params: dict[str, Any], **extra: Any) -> tuple[Flow, PluginParams]:
        trigger = TRIGGERS.get(key)
        assert trigger is not None
        flow = Flow(
            name="flow-" + key.split(".")[1],
            trigger=TriggerSpec(type=key, connection="main", params=params),
            actions=[ActionSpec(type="webhook", params={"url": "http://127.0.0.1:9/x"})],
            **extra,
        )
        return flow, trigger.Params.model_validate(params)

    async def poll(self, flow: Flow, params: PluginParams) -> PollResult:
        return await poll_flow(
            flow,
            params,
            trigger=TRIGGERS[flow.trigger.type],
            client=self.client,
            pool=self.pool,
            worker="w1",
            clock=self.sb.clock.datetime,
            poller=self.poller,
        )

    async def payloads(self, flow: Flow) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT payload FROM events WHERE flow_name = $1 ORDER BY created_at, id", flow.name
        )
        return [r["payload"] for r in rows]

    def api_paths(self) -> list[str]:
        return [r.path for r in self.sb.requests() if not r.path.startswith("/oauth")]


@asynccontextmanager
async def harness(pool: asyncpg.Pool, **sandbox: Any) -> AsyncIterator[Harness]:
    async with start_sandbox(rate_limit=None, **sandbox) as sb, aiohttp.ClientSession() as http:
        key = sb.state.auth.add_api_key(sb.client_id)
        client = SendPulseClient(
            connection_id="main",
            session=http,
            base_url=sb.base_url,
            limiter=AsyncLimiter(1000, 1),
            auth=StaticKey(connection_id="main", provider="sendpulse", key=key, pool=pool),
        )
        yield Harness(sb, client, pool)


@pytest.fixture
async def h(db_pool: asyncpg.Pool) -> AsyncIterator[Harness]:
    async with harness(db_pool) as running:
        yield running


@dataclass
class Case:
    """One trigger's story: the account before, one change, and the event it must make."""

    key: str
    params: dict[str, Any]
    setup: Callable[[State], Any]
    change: Callable[[State], Any]
    # The event's payload, or a function of the sandbox's state giving it.
    payload: dict[str, Any] | Callable[[State], dict[str, Any]]
    # Requests of a poll on an unchanged account (the setup's size is chosen to need this).
    requests: int


FEB_1 = datetime(2026, 2, 1, 9, 30, tzinfo=UTC).timestamp()


def _book(state: State, n: int = 3, *, unsubscribed: int = 0) -> None:
    book = state.add_book("Newsletter")
    for i in range(n):
        state.add_subscriber(book.id, f"s{i}@example.com", {"name": f"S{i}"})
    for i in range(unsubscribed):
        state.add_subscriber(book.id, f"u{i}@example.com", {}, status=4)


CASES = [
    Case(
        "sendpulse.subscriber_added",
        {"mailing_list_id": 1},
        _book,
        lambda s: s.add_subscriber(1, "New@Example.com", {"name": "Nia"}, phone="380501234567"),
        {
            "email": "new@example.com",
            "mailing_list_id": 1,
            "status": 1,
            "status_explain": "Active",
            "phone": "380501234567",
            "variables": {"name": "Nia"},
        },
        1,
    ),
    Case(
        "sendpulse.subscriber_removed",
        {"mailing_list_id": 1},
        _book,
        lambda s: s.remove_subscriber(1, "s1@example.com"),
        {"email": "s1@example.com", "mailing_list_id": 1},
        1,
    ),
    Case(
        "sendpulse.subscriber_unsubscribed",
        {"mailing_list_id": 1},
        lambda s: _book(s, unsubscribed=1),
        lambda s: s.unsubscribe(1, "s2@example.com"),
        {
            "email": "s2@example.com",
            "mailing_list_id": 1,
            "status": 4,
            "status_explain": "Unsubscribed",
            "phone": None,
            "variables": {"name": "S2"},
        },
        1,
    ),
    Case(
        "sendpulse.subscriber_status_changed",
        {"mailing_list_id": 1, "to": "unsubscribed"},
        _book,
        lambda s: (s.set_status(1, "s0@example.com", 2), s.unsubscribe(1, "s2@example.com")),
        {
            "email": "s2@example.com",
            "mailing_list_id": 1,
            "status": 4,
            "status_explain": "Unsubscribed",
            "phone": None,
            "variables": {"name": "S2"},
            "previous_status": 1,
        },
        1,
    ),
    Case(
        "sendpulse.subscriber_variables_changed",
        {"mailing_list_id": 1, "variables": ["name"]},
        _book,
        lambda s: (
            s.set_variables(1, "s0@example.com", {"city": "Oslo"}),
            s.set_variables(1, "s1@example.com", {"name": "Renamed"}),
        ),
        {
            "email": "s1@example.com",
            "mailing_list_id": 1,
            "status": 1,
            "status_explain": "Active",
            "phone": None,
            "variables": {"name": "Renamed"},
        },
        1,
    ),
    Case(
        "sendpulse.mailing_list_created",
        {},
        lambda s: (_book(s), s.add_book("Old")),
        lambda s: s.add_book("Brand new", created=FEB_1),
        {
            "id": 3,
            "name": "Brand new",
            "all_email_qty": 0,
            "active_email_qty": 0,
            "creationdate": "2026-02-01 09:30:00",
            "status": 0,
        },
        1,
    ),
]


def _campaigns(state: State, n: int = 2) -> None:
    _book(state)
    for i in range(n):
        state.create_campaign([1], subject=f"Issue {i}")


def _utc(ts: float) -> str:
    """SendPulse's `YYYY-MM-DD HH:MM:SS` (UTC), written out here rather than borrowed."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def _sent_payload(state: State) -> dict[str, Any]:
    campaign = state.campaigns.items[1]
    return {
        "id": 1,
        "name": "Issue 0",
        "subject": "Issue 0",
        "sender_name": "Sandbox",
        "sender_email": "sender@example.com",
        "list_id": 1,
        "status": 3,
        "all_email_qty": 3,
        "previous_status": 0,
        "send_date": _utc(campaign.start),
        # Three recipients, all delivered, one opening (README: the statistics of a sent
        # campaign, fetched with GET /campaigns/{id}).
        "statistics": {
            "sent": 3,
            "delivered": 3,
            "opening": 1,
            "link_redirected": 0,
            "unsubscribe": 0,
            "error": 0,
        },
    }


CASES += [
    Case(
        "sendpulse.campaign_created",
        {},
        _campaigns,
        lambda s: s.create_campaign([1], subject="Spring sale"),
        {
            "id": 3,
            "name": "Spring sale",
            "subject": "Spring sale",
            "sender_name": "Sandbox",
            "sender_email": "sender@example.com",
            "list_id": 1,
            "status": 0,
            "all_email_qty": 3,
        },
        1,
    ),
    Case(
        "sendpulse.campaign_status_changed",
        {"to": "sent"},
        lambda s: _campaigns(s, 1),
        lambda s: s.clock.advance(3600),
        _sent_payload,
        1,
    ),
]


def _morning(state: State) -> None:
    """Move the sandbox to 01:00 UTC of the next day, so per-day lists hold one day."""
    now = state.now()
    state.clock.advance(86_400 - now % 86_400 + 3600)


def _send(state: State, sender: str, to: str, subject: str = "Receipt") -> Any:
    return state.smtp.send(sender, [to], subject, 1200, state.now())[0]


def _smtp_setup(state: State) -> None:
    _morning(state)
    _send(state, "shop@example.com", "old@example.com")
    _send(state, "other@example.com", "old@example.com")
    _send(state, "shop@example.com", "gone@bounce.example.com")
    _send(state, "shop@example.com", "lost@bounce.example.com")
    state.smtp.unsubscribe("early@example.com", state.now())
    state.smtp.unsubscribe("earlier@example.com", state.now() - 60)


def _pick(record: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    return {name: record.get(name) for name in fields}


SENT_FIELDS = sorted(TRIGGERS.get("sendpulse.smtp_email_sent").payload_fields)  # type: ignore[union-attr]

CASES += [
    Case(
        "sendpulse.smtp_email_sent",
        {"sender": "shop@example.com"},
        _smtp_setup,
        lambda s: (
            _send(s, "other@example.com", "skip@example.com"),
            _send(s, "shop@example.com", "buyer@example.com"),
        ),
        lambda s: _pick(s.smtp.sent[-1].json(), SENT_FIELDS),
        1,
    ),
    Case(
        "sendpulse.smtp_email_bounced",
        {},
        _smtp_setup,
        lambda s: (
            _send(s, "shop@example.com", "fine@example.com"),
            _send(s, "shop@example.com", "nobody@bounce.example.com"),
        ),
        lambda s: {
            "email_to": "nobody@bounce.example.com",
            "sender": "shop@example.com",
            "send_date": _utc(s.smtp.sent[-1].send_date),
            "subject": "Receipt",
            "smtp_answer_code": 550,
            "smtp_answer_subcode": "5.1.1",
            "smtp_answer_data": "User unknown",
        },
        1,
    ),
    Case(
        "sendpulse.smtp_unsubscribed",
        {},
        _smtp_setup,
        lambda s: s.smtp.unsubscribe("late@example.com", s.now()),
        lambda s: {
            "email": "late@example.com",
            "date": _utc(s.smtp.unsubscribes["late@example.com"].at),
            "unsubscribe_by_link": 1,
            "unsubscribe_by_user": 0,
            "spam_complaint": 0,
        },
        1,
    ),
]


def _crm(state: State) -> None:
    for name in ("Ada", "Grace"):
        state.crm.add_contact(name, "Lovelace", state.now() - 3600, emails=[f"{name}@example.com"])
    for n in range(2):
        state.crm.add_deal(f"Deal {n}", state.now() - 3600, price=100.0, contacts=[1])
    for contact in state.crm.contacts.values():
        contact.updated = state.now() - 1800


def _touch_contact(state: State, contact_id: int) -> None:
    contact = state.crm.contacts[contact_id]
    contact.first_name = "Renamed"
    contact.updated = state.now()


CONTACT_KEYS = sorted(TRIGGERS.get("sendpulse.crm_contact_created").payload_fields)  # type: ignore[union-attr]

CASES += [
    Case(
        "sendpulse.crm_contact_created",
        {},
        _crm,
        lambda s: s.crm.add_contact("Nia", "New", s.now(), phones=["380501234567"]),
        lambda s: _pick(s.crm.contacts[3].json(), CONTACT_KEYS),
        1,
    ),
    Case(
        "sendpulse.crm_contact_updated",
        {},
        _crm,
        lambda s: (s.crm.add_contact("Only", "Created", s.now()), _touch_contact(s, 2)),
        lambda s: _pick(s.crm.contacts[2].json(), CONTACT_KEYS),
        1,
    ),
    Case(
        "sendpulse.crm_deal_created",
        {"pipeline_id": 1},
        _crm,
        lambda s: s.crm.add_deal("Big one", s.now(), price=999.0, contacts=[2]),
        lambda s: s.crm.deals[3].json(),
        1,
    ),
    Case(
        "sendpulse.crm_deal_stage_changed",
        {"to_step_id": 3},
        _crm,
        lambda s: (s.crm.move_deal(1, 2, s.now()), s.crm.move_deal(2, 3, s.now())),
        lambda s: {**s.crm.deals[2].json(), "previous_pipeline_id": 1, "previous_step_id": 1},
        1,
    ),
]


def _chat(state: State) -> None:
    bot = state.chatbots.add_bot("telegram", "Helper", state.now() - 7200)
    for name in ("Ann", "Bob"):
        contact = state.chatbots.add_contact(bot.id, name, state.now() - 3600)
        state.chatbots.add_message(contact, f"hi from {name}", 1, state.now() - 3000)
        state.chatbots.add_message(contact, "hello!", 2, state.now() - 2900)


def _contact_by_name(state: State, name: str) -> Any:
    return next(c for c in state.chatbots.contacts.values() if c.first_name == name)


def _chat_write(state: State) -> None:
    ann = _contact_by_name(state, "Ann")
    state.chatbots.add_message(ann, "where is my order?", 1, state.now())
    state.chatbots.add_message(ann, "let me check", 2, state.now())


def _message_payload(state: State) -> dict[str, Any]:
    message = state.chatbots.messages[-2]
    return {
        "id": message.id,
        "contact_id": message.contact_id,
        "bot_id": message.bot_id,
        "channel": "telegram",
        "text": "where is my order?",
        "created_at": fmt_chatbot(message.created),
    }


def _chat_join(state: State) -> None:
    bot = next(iter(state.chatbots.bots))
    # An old contact writing again is not a new subscriber; only Cleo is.
    state.chatbots.add_message(_contact_by_name(state, "Bob"), "me again", 1, state.now())
    state.chatbots.add_contact(bot, "Cleo", state.now(), tags=["vip"])


def _contact_payload(state: State) -> dict[str, Any]:
    contact = _contact_by_name(state, "Cleo").json()
    fields = TRIGGERS.get("sendpulse.chatbot_contact_subscribed").payload_fields  # type: ignore[union-attr]
    return _pick({**contact, "channel": "telegram"}, sorted(fields))


def _sms(state: State, created: float) -> Any:
    campaign = SmsCampaign(
        state.channels.new_id(), 1, "Shop", "Sale!", ["380501234567"], created, created
    )
    state.channels.sms[campaign.id] = campaign
    return campaign


def _sms_setup(state: State) -> None:
    _book(state)
    _sms(state, state.now() - 7200)
    _sms(state, state.now() - 3600)


def _sms_payload(state: State) -> dict[str, Any]:
    campaign = list(state.channels.sms.values())[-1]
    return {
        "id": campaign.id,
        "address_book_id": 1,
        "company_price": 0.02,
        "company_currency": "USD",
        "send_date": _utc(campaign.send_date),
        "date_created": _utc(campaign.created),
        "sender_mail_address": "sender@example.com",
        "sender_mail_name": "Shop",
    }


def _push_setup(state: State) -> None:
    site = state.add_push_website("https://shop.example.com")
    state.add_push_subscription(site.id, subscribed=state.now() - 86_400 * 3)
    state.add_push_subscription(site.id, subscribed=state.now() - 3600)


def _push_payload(state: State) -> dict[str, Any]:
    sub = state.channels.subscriptions[-1]
    return {
        "id": sub.id,
        "website_id": sub.website_id,
        "browser": "Firefox",
        "lang": "en",
        "os": "Linux",
        "country_code": "DE",
        "city": "Riga",
        "variables": [],
        "subscription_date": _utc(sub.subscribed),
        "status": 1,
    }


CASES += [
    Case(
        "sendpulse.chatbot_message_received",
        {},
        _chat,
        _chat_write,
        _message_payload,
        # The dialogs page, and the one dialog still inside the overlap below the cursor
        # (its messages are read again in case one arrived late).
        2,
    ),
    Case(
        "sendpulse.chatbot_contact_subscribed",
        {"channel": "telegram"},
        _chat,
        _chat_join,
        _contact_payload,
        # The dialogs, and contacts/get for Cleo, still inside the overlap window.
        2,
    ),
    Case(
        "sendpulse.sms_campaign_created",
        {},
        _sms_setup,
        lambda s: _sms(s, s.now()),
        _sms_payload,
        1,
    ),
    Case(
        "sendpulse.push_subscriber_added",
        {"website_id": 1},
        _push_setup,
        lambda s: s.add_push_subscription(1, city="Riga"),
        _push_payload,
        1,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.key.split(".")[1])
async def test_trigger_baseline_change_and_quiet_poll(h: Harness, case: Case) -> None:
    case.setup(h.state)
    flow, params = h.flow(case.key, case.params)
    first = await h.poll(flow, params)
    assert (first.status, first.baseline, first.events_created) == ("ok", True, 0), first.error
    case.change(h.state)
    second = await h.poll(flow, params)
    assert second.status == "ok", second.error
    expected = case.payload(h.state) if callable(case.payload) else case.payload
    assert await h.payloads(flow) == [expected]
    # Templates are checked against payload_fields: the declaration must name exactly the
    # fields the payload carries (a field declared but never sent would pass `check` and
    # then fail every delivery whose template uses it).
    trigger = TRIGGERS.get(case.key)
    assert trigger is not None
    assert set(expected) == trigger.payload_fields
    # The next poll comes an interval later, past the overlap window of time-ordered lists.
    h.state.clock.advance(600)
    before = len(h.api_paths())
    third = await h.poll(flow, params)
    assert third.events_created == 0
    assert third.requests == case.requests == len(h.api_paths()) - before


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if TRIGGERS.get(c.key).strategy != "fingerprint"],  # type: ignore[union-attr]
    ids=lambda c: c.key.split(".")[1],
)
async def test_trigger_start_all_is_capped(h: Harness, case: Case) -> None:
    case.setup(h.state)
    flow, params = h.flow(case.key, case.params, start="all", max_first_run_events=1)
    first = await h.poll(flow, params)
    if case.key == "sendpulse.subscriber_removed":
        # A removal has no "all" to start from: the first run is a baseline.
        assert (first.events_created, first.held_back) == (0, 0)
    else:
        assert first.events_created == 1
        assert first.held_back >= 1
    assert (await h.poll(flow, params)).events_created == 0


def test_every_trigger_declares_its_catalogue_entry() -> None:
    for trigger in TRIGGERS:
        assert trigger.key.startswith("sendpulse."), trigger.key
        assert trigger.scope and trigger.strategy and trigger.api_calls, trigger.key
        assert trigger.payload_fields, trigger.key
        assert isinstance(trigger, type) and issubclass(trigger, Trigger)


async def test_campaign_status_start_all_takes_the_newest_campaigns(h: Harness) -> None:
    _campaigns(h.state, 3)
    h.state.clock.advance(3600)  # every campaign is sent by now
    flow, params = h.flow(
        "sendpulse.campaign_status_changed", {"to": "sent"}, start="all", max_first_run_events=1
    )
    first = await h.poll(flow, params)
    assert (first.events_created, first.held_back) == (1, 2)
    assert [p["id"] for p in await h.payloads(flow)] == [3]
