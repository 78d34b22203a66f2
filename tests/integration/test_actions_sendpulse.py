"""Every SendPulse action through the dispatcher against the sandbox: the right endpoint,
the right body (as the sandbox stores it), templated params, and the rate limit held."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from cryptography.fernet import Fernet

from connector.config import Config
from connector.dispatch import Dispatcher
from connector.providers.fakes import RecordingSleep, SendLog, max_in_window, sandbox_config
from connector.providers.provider_clients import ProviderClients
from connector.sandbox.harness import Sandbox, start_sandbox
from tests.integration.dispatch_support import FakeClock, attempts, delivery, insert_event

KEY = Fernet.generate_key()
TRIGGER = {"type": "sendpulse.subscriber_added", "params": {"mailing_list_id": 1}}
PAYLOAD = {
    "email": "ann@example.com",
    "phone": "+380501112233",
    "mailing_list_id": 1,
    "variables": {"name": "Ann", "city": "Kyiv"},
    "status": 1,
}


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with start_sandbox(rate_limit=10.0) as handle:
        handle.state.add_sender("news@example.com", "News")
        yield handle


def config_for(sb: Sandbox, actions: list[dict[str, Any]], **extra: Any) -> Config:
    flows = [{"name": "f", "trigger": TRIGGER, "actions": actions, "concurrency": 50}]
    return sandbox_config(sb.base_url, sb.client_id, sb.client_secret, flows=flows, extra=extra)


async def deliver(
    sb: Sandbox,
    pool: asyncpg.Pool,
    http: aiohttp.ClientSession,
    action: dict[str, Any],
    payload: dict[str, Any] | list[dict[str, Any]] = PAYLOAD,
    **extra: Any,
) -> list[asyncpg.Record]:
    config = config_for(sb, [action], **extra)
    providers = ProviderClients(
        session=http,
        pool=pool,
        config=config,
        secret_key=KEY,
        sleep=RecordingSleep(),
    )
    kind = action["type"]
    payloads = payload if isinstance(payload, list) else [payload]
    async with pool.acquire() as conn:
        ids = [
            (await insert_event(conn, "f", uuid.uuid4().hex, p, actions=[kind]))[0]
            for p in payloads
        ]
    worker = Dispatcher(pool, config, http=http, providers=providers, clock=FakeClock())
    assert await worker.run_once() == len(payloads)
    async with pool.acquire() as conn:
        return [await delivery(conn, did) for did in ids]


def posted(sb: Sandbox, path: str) -> int:
    return sum(1 for r in sb.requests() if r.method in ("POST", "DELETE") and r.path == path)


async def test_add_subscriber_single_and_double_opt_in(
    sb: Sandbox, db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    book = sb.state.add_book("welcome")
    action = {
        "type": "sendpulse.add_subscriber",
        "mailing_list_id": book.id,
        "email": "{{ event.email }}",
        "phone": "{{ event.phone }}",
        "variables": {"name": "{{ event.variables.name }}", "source": "connector"},
    }
    [row] = await deliver(sb, db_pool, http, action)
    assert row["state"] == "delivered", row["last_error"]
    assert row["summary"] == f"added ann@example.com to list {book.id} (active)"
    subscriber = book.get("ann@example.com")
    assert subscriber is not None and subscriber.status == 1
    assert subscriber.variables["name"] == "Ann" and subscriber.variables["source"] == "connector"
    assert posted(sb, f"/addressbooks/{book.id}/emails") == 1

    double = {**action, "opt_in": "double", "sender_email": "news@example.com"}
    [row] = await deliver(sb, db_pool, http, double, {**PAYLOAD, "email": "bob@example.com"})
    assert row["state"] == "delivered"
    bob = book.get("bob@example.com")
    assert bob is not None and bob.status == 2  # confirmation requested


async def test_subscriber_variables_unsubscribe_remove_blacklist(
    sb: Sandbox, db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    book = sb.state.add_book("list")
    sb.state.add_subscriber(book.id, "ann@example.com", {"name": "A"})
    base = {"mailing_list_id": book.id, "email": "{{ event.email }}"}
    [row] = await deliver(
        sb,
        db_pool,
        http,
        {
            "type": "sendpulse.update_subscriber_variables",
            **base,
            "variables": {"city": "{{ event.variables.city }}"},
        },
    )
    assert row["state"] == "delivered", row["last_error"]
    subscriber = book.get("ann@example.com")
    assert subscriber is not None and subscriber.variables["city"] == "Kyiv"

    [row] = await deliver(sb, db_pool, http, {"type": "sendpulse.unsubscribe_subscriber", **base})
    subscriber = book.get("ann@example.com")
    assert row["state"] == "delivered" and subscriber is not None and subscriber.status == 4

    [row] = await deliver(sb, db_pool, http, {"type": "sendpulse.remove_subscriber", **base})
    assert row["state"] == "delivered" and book.get("ann@example.com") is None

    [row] = await deliver(
        sb,
        db_pool,
        http,
        {"type": "sendpulse.add_to_blacklist", "email": "{{ event.email }}", "comment": "bounced"},
    )
    assert row["state"] == "delivered" and sb.state.blacklist == {"ann@example.com": "bounced"}


async def test_send_email_html_and_template(
    sb: Sandbox, db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    html = {
        "type": "sendpulse.send_email",
        "to": "{{ event.email }}",
        "from_email": "news@example.com",
        "from_name": "News",
        "subject": "Welcome, {{ event.variables.name }}",
        "html": "<p>Hello {{ event.variables.name }}</p>",
        "text": "Hello",
    }
    [row] = await deliver(sb, db_pool, http, html)
    assert row["state"] == "delivered", row["last_error"]
    [sent] = sb.state.smtp.sent
    assert sent.recipient == "ann@example.com" and sent.subject == "Welcome, Ann"
    assert sent.size == len("Hello") + len(b"<p>Hello Ann</p>")
    template = {
        "type": "sendpulse.send_email",
        "to": "{{ event.email }}",
        "from_email": "news@example.com",
        "subject": "Welcome",
        "template_id": 42,
        "variables": {"name": "{{ event.variables.name }}"},
    }
    [row] = await deliver(sb, db_pool, http, template)
    assert row["state"] == "delivered" and len(sb.state.smtp.sent) == 2


async def test_create_campaign(
    sb: Sandbox, db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    book = sb.state.add_book("news")
    sb.state.add_subscriber(book.id, "ann@example.com")
    action = {
        "type": "sendpulse.create_campaign",
        "mailing_list_id": book.id,
        "sender_name": "News",
        "sender_email": "news@example.com",
        "subject": "Hi {{ event.variables.name }}",
        "html": "<h1>News</h1>",
        "campaign_name": "for {{ event.email }}",
    }
    [row] = await deliver(sb, db_pool, http, action)
    assert row["state"] == "delivered", row["last_error"]
    [campaign] = sb.state.campaigns.items.values()
    assert campaign.subject == "Hi Ann" and campaign.list_ids == [book.id]
    assert base64.b64decode(campaign.body) == b"<h1>News</h1>"
    assert row["summary"] == f"created campaign {campaign.id} to list {book.id}"


async def test_sms_and_phones(
    sb: Sandbox, db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    book = sb.state.add_book("phones")
    [row] = await deliver(
        sb,
        db_pool,
        http,
        {
            "type": "sendpulse.add_phone_to_list",
            "mailing_list_id": book.id,
            "phone": "{{ event.phone }}",
            "variables": {"name": "{{ event.variables.name }}"},
        },
    )
    assert row["state"] == "delivered", row["last_error"]
    assert sb.state.channels.phones[book.id]["380501112233"]["variables"] == {"name": "Ann"}
    [row] = await deliver(
        sb,
        db_pool,
        http,
        {
            "type": "sendpulse.send_sms",
            "sender": "Shop",
            "phone": "{{ event.phone }}",
            "body": "Hi {{ event.variables.name }}",
        },
    )
    assert row["state"] == "delivered", row["last_error"]
    [sms] = sb.state.channels.sms.values()
    assert sms.body == "Hi Ann" and sms.phones == ["380501112233"]


async def test_crm_contact_and_deal(
    sb: Sandbox, db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    [row] = await deliver(
        sb,
        db_pool,
        http,
        {
            "type": "sendpulse.create_crm_contact",
            "responsible_id": 1,
            "first_name": "{{ event.variables.name }}",
            "email": "{{ event.email }}",
            "phone": "{{ event.phone }}",
        },
    )
    assert row["state"] == "delivered", row["last_error"]
    [contact] = sb.state.crm.contacts.values()
    assert contact.first_name == "Ann" and contact.emails == ["ann@example.com"]
    assert contact.phones == ["+380501112233"]
    [row] = await deliver(
        sb,
        db_pool,
        http,
        {
            "type": "sendpulse.create_crm_deal",
            "pipeline_id": 1,
            "step_id": 1,
            "deal_name": "Deal for {{ event.email }}",
            "price": 99.5,
            "contact_ids": [contact.id],
        },
    )
    assert row["state"] == "delivered", row["last_error"]
    [deal] = sb.state.crm.deals.values()
    assert deal.name == "Deal for ann@example.com" and deal.contacts == [contact.id]
    assert deal.price == 99.5
    # An unknown pipeline step is SendPulse's validation error: dead at once, not retried.
    [row] = await deliver(
        sb,
        db_pool,
        http,
        {"type": "sendpulse.create_crm_deal", "pipeline_id": 1, "step_id": 99, "deal_name": "x"},
    )
    assert row["state"] == "dead" and row["attempt"] == 1
    async with db_pool.acquire() as conn:
        [attempt] = await attempts(conn, row["id"])
    assert attempt["status_code"] == 422 and "stepId" in attempt["detail"]


async def test_chatbot_message_and_flow(
    sb: Sandbox, db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    bot = sb.state.chatbots.add_bot("telegram", "bot", sb.state.now())
    contact = sb.state.chatbots.add_contact(bot.id, "Ann", sb.state.now())
    payload = {**PAYLOAD, "variables": {"contact": contact.id, "name": "Ann"}}
    [row] = await deliver(
        sb,
        db_pool,
        http,
        {
            "type": "sendpulse.send_chatbot_message",
            "channel": "telegram",
            "contact_id": "{{ event.variables.contact }}",
            "text": "Hello {{ event.variables.name }}",
        },
        payload,
    )
    assert row["state"] == "delivered", row["last_error"]
    assert sb.state.chatbots.messages[-1].text == "Hello Ann"
    [row] = await deliver(
        sb,
        db_pool,
        http,
        {
            "type": "sendpulse.run_chatbot_flow",
            "channel": "telegram",
            "contact_id": "{{ event.variables.contact }}",
            "flow_id": "flow-1",
            "external_data": {"email": "{{ event.email }}"},
        },
        payload,
    )
    assert row["state"] == "delivered", row["last_error"]
    [run] = sb.state.chatbots.flow_runs
    assert run["flow_id"] == "flow-1" and run["external_data"] == {"email": "ann@example.com"}
    assert run["contact_id"] == contact.id


async def test_fire_automation_event(
    sb: Sandbox, db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    [row] = await deliver(
        sb,
        db_pool,
        http,
        {
            "type": "sendpulse.fire_automation_event",
            "event": "signed up",
            "email": "{{ event.email }}",
            "variables": {"name": "{{ event.variables.name }}"},
        },
    )
    assert row["state"] == "delivered", row["last_error"]
    [fired] = sb.state.channels.events
    assert fired["event"] == "signed up"
    assert fired["data"] == {"email": "ann@example.com", "name": "Ann"}
    assert posted(sb, "/events/name/signed%20up") + posted(sb, "/events/name/signed up") == 1


async def test_missing_list_is_fatal_and_server_errors_are_retried(
    sb: Sandbox, db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    action = {"type": "sendpulse.add_subscriber", "mailing_list_id": 999, "email": "a@b.io"}
    [row] = await deliver(sb, db_pool, http, action)
    assert row["state"] == "dead" and row["attempt"] == 1
    assert "book not found" in row["last_error"].lower()
    book = sb.state.add_book("ok")
    sb.faults.script("500", count=50, path_prefix=f"/addressbooks/{book.id}")
    [row] = await deliver(sb, db_pool, http, {**action, "mailing_list_id": book.id})
    assert row["state"] == "pending" and row["attempt"] == 1


async def test_rate_limit_is_held_across_concurrent_deliveries(
    sb: Sandbox, db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    book = sb.state.add_book("busy")
    action = {
        "type": "sendpulse.add_subscriber",
        "mailing_list_id": book.id,
        "email": "{{ event.email }}",
    }
    payloads = [{**PAYLOAD, "email": f"u{n}@example.com"} for n in range(20)]
    sent = SendLog()
    async with aiohttp.ClientSession(trace_configs=[sent.trace()]) as traced:
        rows = await deliver(sb, db_pool, traced, action, payloads, rate_limit="8/s")
    assert {r["state"] for r in rows} == {"delivered"}
    # When the client sent them (token call included), not when the sandbox read them.
    assert len(sent.requests("/addressbooks")) == 20
    assert max_in_window(sent.sent, 1.0) <= 8
    calls = [r for r in sb.requests() if r.path.startswith("/addressbooks")]
    assert len(calls) == 20 and all(r.status == 200 for r in calls)
    assert max_in_window(calls, 1.0) <= 8


def _exact_cases(contact_id: str) -> list[tuple[dict[str, Any], tuple[str, str, dict[str, Any]]]]:
    """Each action, and the one request SendPulse's spec says it must make for PAYLOAD."""
    return [
        (
            {
                "type": "sendpulse.add_subscriber",
                "mailing_list_id": 1,
                "email": "{{ event.email }}",
                "phone": "{{ event.phone }}",
                "variables": {"name": "{{ event.variables.name }}"},
            },
            (
                "POST",
                "/addressbooks/1/emails",
                {
                    "emails": [
                        {
                            "email": "ann@example.com",
                            "variables": {"name": "Ann", "Phone": "+380501112233"},
                        }
                    ]
                },
            ),
        ),
        (
            {
                "type": "sendpulse.add_subscriber",
                "mailing_list_id": 1,
                "email": "{{ event.email }}",
                "opt_in": "double",
                "sender_email": "news@example.com",
            },
            (
                "POST",
                "/addressbooks/1/emails",
                {
                    "emails": [{"email": "ann@example.com"}],
                    "confirmation": "force",
                    "sender_email": "news@example.com",
                    "message_lang": "en",
                },
            ),
        ),
        (
            {
                "type": "sendpulse.update_subscriber_variables",
                "mailing_list_id": 1,
                "email": "{{ event.email }}",
                "variables": {"city": "{{ event.variables.city }}"},
            },
            (
                "POST",
                "/addressbooks/1/emails/variable",
                {"email": "ann@example.com", "variables": [{"name": "city", "value": "Kyiv"}]},
            ),
        ),
        (
            {
                "type": "sendpulse.remove_subscriber",
                "mailing_list_id": 1,
                "email": "{{ event.email }}",
            },
            ("DELETE", "/addressbooks/1/emails", {"emails": ["ann@example.com"]}),
        ),
        (
            {
                "type": "sendpulse.unsubscribe_subscriber",
                "mailing_list_id": 1,
                "email": "{{ event.email }}",
            },
            ("POST", "/addressbooks/1/emails/unsubscribe", {"emails": ["ann@example.com"]}),
        ),
        (
            {"type": "sendpulse.add_to_blacklist", "email": "{{ event.email }}", "comment": "spam"},
            # Base64 of the comma-separated emails.
            ("POST", "/blacklist", {"emails": "YW5uQGV4YW1wbGUuY29t", "comment": "spam"}),
        ),
        (
            {
                "type": "sendpulse.create_campaign",
                "mailing_list_id": 1,
                "sender_name": "News",
                "sender_email": "news@example.com",
                "subject": "Hi {{ event.variables.name }}",
                "html": "<p>Hi</p>",
                "campaign_name": "welcome",
            },
            (
                "POST",
                "/campaigns",
                {
                    "sender_name": "News",
                    "sender_email": "news@example.com",
                    "subject": "Hi Ann",
                    "list_id": 1,
                    "body": "PHA+SGk8L3A+",  # Base64 of <p>Hi</p>
                    "name": "welcome",
                },
            ),
        ),
        (
            {
                "type": "sendpulse.create_crm_deal",
                "pipeline_id": 1,
                "step_id": 1,
                "deal_name": "Deal for {{ event.email }}",
                "price": 99.5,
                "contact_ids": [],
            },
            (
                "POST",
                "/crm/v1/deals",
                {
                    "pipelineId": 1,
                    "stepId": 1,
                    "name": "Deal for ann@example.com",
                    "price": 99.5,
                    "currency": "USD",
                    "contact": [],
                },
            ),
        ),
        (
            {
                "type": "sendpulse.run_chatbot_flow",
                "channel": "telegram",
                "contact_id": contact_id,
                "flow_id": "flow-1",
                "external_data": {"email": "{{ event.email }}"},
            },
            (
                "POST",
                "/telegram/flows/run",
                {
                    "contact_id": contact_id,
                    "flow_id": "flow-1",
                    "external_data": {"email": "ann@example.com"},
                },
            ),
        ),
        (
            {
                "type": "sendpulse.fire_automation_event",
                "event": "signed up",
                "email": "{{ event.email }}",
                "variables": {"name": "{{ event.variables.name }}"},
            },
            (
                "POST",
                "/events/name/signed%20up",
                {"name": "Ann", "email": "ann@example.com"},
            ),
        ),
    ]


EXACT_IDS = [
    "add_subscriber",
    "add_subscriber_double",
    "update_subscriber_variables",
    "remove_subscriber",
    "unsubscribe_subscriber",
    "add_to_blacklist",
    "create_campaign",
    "create_crm_deal",
    "run_chatbot_flow",
    "fire_automation_event",
]


@pytest.mark.parametrize("index", range(len(EXACT_IDS)), ids=EXACT_IDS)
async def test_each_action_sends_exactly_the_documented_request(
    sb: Sandbox, db_pool: asyncpg.Pool, index: int
) -> None:
    book = sb.state.add_book("Newsletter")
    sb.state.add_subscriber(book.id, "ann@example.com", {"city": "Lviv"})
    bot = sb.state.chatbots.add_bot("telegram", "bot", sb.state.now())
    contact = sb.state.chatbots.add_contact(bot.id, "Ann", sb.state.now())
    action, (method, path, body) = _exact_cases(contact.id)[index]
    sent = SendLog()
    async with aiohttp.ClientSession(trace_configs=[sent.trace()]) as traced:
        [row] = await deliver(sb, db_pool, traced, action)
    assert row["state"] == "delivered", row["last_error"]
    [request] = [r for r in sent.sent if not r.path.startswith("/oauth")]
    assert (request.method, request.path, request.query) == (method, path, {})
    assert request.json() == body
