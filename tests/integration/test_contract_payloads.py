"""The triggers and actions that the published specs changed: literal requests and payloads.

Each test states, as literals, the exact calls (method, path, body or query) and the exact
event payloads, for the shapes the OpenAPI files document (see tests/contract).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiolimiter import AsyncLimiter

from actions.sendpulse.add_phone_to_list import AddPhoneToList
from actions.sendpulse.create_crm_contact import CreateCrmContact
from actions.sendpulse.run_chatbot_flow import RunChatbotFlow
from actions.sendpulse.send_chatbot_message import SendChatbotMessage
from actions.sendpulse.send_email import SendEmail
from connector.auth.tokens import StaticKey
from connector.http_client.api_errors import RateLimited, RetryLater, UnexpectedResponse
from connector.http_client.api_retry import RetryPolicy
from connector.plugins import Action, Item, Trigger
from connector.providers.sendpulse_client import SendPulseClient
from connector.sandbox.harness import Sandbox
from tests.contract.workload import account
from triggers.sendpulse.chatbot_contact_subscribed import ChatbotContactSubscribed
from triggers.sendpulse.chatbot_message_received import ChatbotMessageReceived
from triggers.sendpulse.crm_contact_updated import CrmContactUpdated
from triggers.sendpulse.crm_deal_created import CrmDealCreated
from triggers.sendpulse.smtp_email_sent import SmtpEmailSent
from triggers.sendpulse.subscriber_removed import SubscriberRemoved

JAN_1 = 1767225600.0  # 2026-01-01T00:00:00Z
BOT = "00000b070000000000000001"
CONTACT = "000000c00000000000000002"


@pytest.fixture
async def api(db_pool: asyncpg.Pool) -> AsyncIterator[tuple[Sandbox, SendPulseClient]]:
    async with account(db_pool, seed=None, chats=False) as running:
        yield running


def calls(sb: Sandbox) -> list[tuple[str, str, Any]]:
    """(method, path, body or raw query) of every API call, in order."""
    return [
        (r.method, r.path, json.loads(r.body) if r.body else r.query)
        for r in sb.requests()
        if not r.path.startswith("/oauth")
    ]


async def run(action: type[Action], client: SendPulseClient, params: dict[str, Any]) -> str:
    result = await action().call(client, action.Params.model_validate(params))  # type: ignore[attr-defined]
    return result.summary


async def payloads(trigger: Trigger, client: SendPulseClient, since: float | None) -> list[Item]:
    return [trigger.payload_of(item) async for item in trigger.poll(client, since)]


SENDS = [
    ("telegram", "/telegram/contacts/sendText", {"contact_id": CONTACT, "text": "Hi"}),
    (
        "messenger",
        "/messenger/contacts/sendText",
        {"contact_id": CONTACT, "message_type": "RESPONSE", "text": "Hi"},
    ),
    (
        "whatsapp",
        "/whatsapp/contacts/send",
        {"contact_id": CONTACT, "message": {"type": "text", "text": {"body": "Hi"}}},
    ),
    (
        "instagram",
        "/instagram/contacts/send",
        {"contact_id": CONTACT, "messages": [{"type": "text", "message": {"text": "Hi"}}]},
    ),
    (
        "livechat",
        "/live-chat/contacts/send",
        {"contact_id": CONTACT, "messages": [{"type": "text", "text": {"text": "Hi"}}]},
    ),
    (
        "tiktok",
        "/tiktok/contacts/send",
        {"contact_id": CONTACT, "messages": [{"type": "text", "text": {"text": "Hi"}}]},
    ),
    (
        "viber",
        "/viber/chatbots/contacts/send",
        {"contact_id": CONTACT, "messages": [{"type": "text", "text": {"text": "Hi"}}]},
    ),
]


@pytest.mark.parametrize(("channel", "path", "body"), SENDS, ids=[s[0] for s in SENDS])
async def test_send_chatbot_message_uses_each_channels_path_and_shape(
    api: tuple[Sandbox, SendPulseClient], channel: str, path: str, body: dict[str, Any]
) -> None:
    sb, client = api
    bot = sb.state.chatbots.add_bot(channel, "Bot", JAN_1)
    contact = sb.state.chatbots.add_contact(bot.id, "Ann", JAN_1)
    assert (bot.id, contact.id) == (BOT, CONTACT)
    params = {"channel": channel, "contact_id": CONTACT, "text": "Hi"}
    assert await run(SendChatbotMessage, client, params) == f"sent a {channel} message to {CONTACT}"
    assert calls(sb) == [("POST", path, body)]
    assert sb.state.chatbots.messages[-1].text == "Hi"


@pytest.mark.parametrize(
    ("channel", "path"),
    [("livechat", "/live-chat/flows/run"), ("viber", "/viber/chatbots/flows/run")],
)
async def test_run_chatbot_flow_at_the_channels_base_path(
    api: tuple[Sandbox, SendPulseClient], channel: str, path: str
) -> None:
    sb, client = api
    bot = sb.state.chatbots.add_bot(channel, "Bot", JAN_1)
    sb.state.chatbots.add_contact(bot.id, "Ann", JAN_1)
    params = {"channel": channel, "contact_id": CONTACT, "flow_id": "f1", "external_data": {"a": 1}}
    await run(RunChatbotFlow, client, params)
    body = {"contact_id": CONTACT, "flow_id": "f1", "external_data": {"a": 1}}
    assert calls(sb) == [("POST", path, body)]


async def test_create_crm_contact_creates_then_adds_email_and_phone(
    api: tuple[Sandbox, SendPulseClient],
) -> None:
    sb, client = api
    params = {
        "responsible_id": "7",
        "first_name": "Ann",
        "last_name": "Lee",
        "email": "ann@example.com",
        "phone": "+380501112233",
    }
    assert await run(CreateCrmContact, client, params) == "created CRM contact 1 (Ann Lee)"
    assert calls(sb) == [
        (
            "POST",
            "/crm/v1/contacts/create",
            {"responsibleId": 7, "firstName": "Ann", "lastName": "Lee"},
        ),
        (
            "POST",
            "/crm/v1/contacts/1/emails",
            {"emails": [{"email": "ann@example.com", "isMain": True}]},
        ),
        ("POST", "/crm/v1/contacts/1/phones", {"phone": "+380501112233"}),
    ]
    contact = sb.state.crm.contacts[1]
    assert (contact.responsible_id, contact.emails, contact.phones) == (
        7,
        ["ann@example.com"],
        ["+380501112233"],
    )


def test_create_crm_contact_needs_a_responsible() -> None:
    with pytest.raises(ValueError, match="responsible_id"):
        CreateCrmContact.Params.model_validate({"first_name": "Ann"})


async def test_add_phone_to_list_with_and_without_variables(
    api: tuple[Sandbox, SendPulseClient],
) -> None:
    sb, client = api
    book = sb.state.add_book("Phones")
    with_vars = {
        "mailing_list_id": book.id,
        "phone": "+38 050 111 2233",
        "variables": {"name": "Ann", "visits": 3},
    }
    assert await run(AddPhoneToList, client, with_vars) == f"added: 380501112233 in list {book.id}"
    plain = {"mailing_list_id": book.id, "phone": "380501112244"}
    await run(AddPhoneToList, client, plain)
    assert calls(sb) == [
        (
            "POST",
            "/sms/numbers/variables",
            {
                "addressBookId": book.id,
                "phones": {
                    "380501112233": [
                        [
                            {"name": "name", "type": "string", "value": "Ann"},
                            {"name": "visits", "type": "number", "value": "3"},
                        ]
                    ]
                },
            },
        ),
        ("POST", "/sms/numbers", {"addressBookId": book.id, "phones": ["380501112244"]}),
    ]
    assert sb.state.channels.phones[book.id]["380501112233"]["variables"] == {
        "name": "Ann",
        "visits": "3",
    }


async def test_send_email_always_has_a_subject_and_both_bodies(
    api: tuple[Sandbox, SendPulseClient],
) -> None:
    sb, client = api
    base = {"to": "ann@example.com", "from_email": "sender@example.com", "subject": "Hi"}
    await run(SendEmail, client, {**base, "template_id": "42", "variables": {"name": "Ann"}})
    await run(SendEmail, client, {**base, "html": "<b>Hi</b>"})
    await run(SendEmail, client, {**base, "text": "Hi\nthere"})
    sender = {"name": "", "email": "sender@example.com"}
    to = [{"email": "ann@example.com"}]
    assert calls(sb) == [
        (
            "POST",
            "/smtp/emails",
            {
                "email": {
                    "from": sender,
                    "to": to,
                    "subject": "Hi",
                    "template": {"id": 42, "variables": {"name": "Ann"}},
                }
            },
        ),
        (
            "POST",
            "/smtp/emails",
            {
                "email": {
                    "from": sender,
                    "to": to,
                    "subject": "Hi",
                    "html": "PGI+SGk8L2I+",
                    "text": "",
                    "auto_plain_text": True,
                }
            },
        ),
        (
            "POST",
            "/smtp/emails",
            {
                "email": {
                    "from": sender,
                    "to": to,
                    "subject": "Hi",
                    "html": "PHA+SGk8YnI+dGhlcmU8L3A+",
                    "text": "Hi\nthere",
                }
            },
        ),
    ]


def test_send_email_without_a_subject_is_refused_at_load() -> None:
    params = {"to": "a@example.com", "from_email": "b@example.com", "template_id": 1}
    with pytest.raises(ValueError, match="subject"):
        SendEmail.Params.model_validate(params)


async def test_smtp_sending_limited_is_retried_later(api: tuple[Sandbox, SendPulseClient]) -> None:
    sb, client = api
    sb.configure(smtp_sending_limited=True)
    params = {
        "to": "a@example.com",
        "from_email": "sender@example.com",
        "subject": "Hi",
        "text": "x",
    }
    with pytest.raises(RetryLater) as caught:
        await run(SendEmail, client, params)
    assert (caught.value.retry_after, caught.value.error_code) == (600.0, 422)
    assert [r.status for r in sb.requests() if r.path == "/smtp/emails"] == [422]


async def test_chatbot_message_received_reads_dialogs_then_the_channels_messages(
    api: tuple[Sandbox, SendPulseClient],
) -> None:
    sb, client = api
    bot = sb.state.chatbots.add_bot("livechat", "Desk", JAN_1 - 7200)
    ann = sb.state.chatbots.add_contact(bot.id, "Ann", JAN_1 - 3600)
    sb.state.chatbots.add_message(ann, "old", 1, JAN_1 - 1800)
    sb.state.chatbots.add_message(ann, "where is my order?", 1, JAN_1)
    sb.state.chatbots.add_message(ann, "let me check", 2, JAN_1 + 60)
    trigger = ChatbotMessageReceived(ChatbotMessageReceived.Params())
    assert await payloads(trigger, client, JAN_1 - 60) == [
        {
            "id": "0000003e0000000000000004",
            "contact_id": CONTACT,
            "bot_id": BOT,
            "channel": "livechat",
            "text": "where is my order?",
            "created_at": "2026-01-01T00:00:00.000Z",
        }
    ]
    assert calls(sb) == [
        ("GET", "/chatbots/dialogs", "size=100&order=desc"),
        (
            "GET",
            "/live-chat/chats/messages",
            f"contact_id={CONTACT}&order=desc&size=100&skip=0",
        ),
    ]


async def test_chatbot_contact_subscribed_completes_new_contacts(
    api: tuple[Sandbox, SendPulseClient],
) -> None:
    sb, client = api
    bot = sb.state.chatbots.add_bot("viber", "Shop", JAN_1 - 7200)
    cleo = sb.state.chatbots.add_contact(bot.id, "Cleo", JAN_1, tags=["vip"])
    old = sb.state.chatbots.add_contact(bot.id, "Old", JAN_1 - 86_400)
    sb.state.chatbots.add_message(old, "me again", 1, JAN_1 + 30)
    trigger = ChatbotContactSubscribed(ChatbotContactSubscribed.Params(channel="viber"))
    assert await payloads(trigger, client, JAN_1 - 60) == [
        {
            "bot_id": BOT,
            "channel": "viber",
            "channel_data": {"name": "Cleo"},
            "created_at": "2026-01-01T00:00:00.000Z",
            "id": cleo.id,
            "status": 1,
            "tags": ["vip"],
            "variables": {},
        }
    ]
    assert calls(sb) == [
        ("GET", "/chatbots/dialogs", "size=100&order=desc"),
        ("GET", "/viber/chatbots/contacts/get", f"id={cleo.id}"),
    ]


class Answers:
    """A client that answers every call with one fixed body (for shapes the sandbox avoids)."""

    requests_made = 0

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.answer


def _dialog(contact_id: str, inbox: str, service: Any = 3) -> dict[str, Any]:
    return {
        "_id": "d" + contact_id,
        "bot_id": BOT,
        "contact": {"id": contact_id, "full_name": "X"},
        "last_inbox_message": {"text": "hi", "date": inbox},
        "service": service,
        "created_at": "2025-12-01T00:00:00.000Z",
    }


async def test_dialogs_out_of_order_fail_the_poll() -> None:
    # An older dialog above a newer one: the order the trigger relies on does not hold.
    rows = [_dialog("a", "2026-01-01T00:00:05.000Z"), _dialog("b", "2026-01-01T00:00:09.000Z")]
    client = Answers({"success": True, "data": {"list": rows}})
    trigger = ChatbotContactSubscribed(ChatbotContactSubscribed.Params())
    with pytest.raises(UnexpectedResponse, match="not ordered"):
        await payloads(trigger, client, None)  # type: ignore[arg-type]


async def test_a_dialog_without_a_numeric_service_fails_the_poll() -> None:
    rows = [_dialog("a", "2026-01-01T00:00:05.000Z", service="telegram")]
    client = Answers({"success": True, "data": {"list": rows}})
    trigger = ChatbotContactSubscribed(ChatbotContactSubscribed.Params())
    with pytest.raises(UnexpectedResponse, match="service"):
        await payloads(trigger, client, None)  # type: ignore[arg-type]


async def test_crm_contact_updated_filters_by_update_day_and_sorts_by_id(
    api: tuple[Sandbox, SendPulseClient],
) -> None:
    sb, client = api
    sb.state.crm.add_contact("Old", "One", JAN_1 - 5 * 86_400)
    changed = sb.state.crm.add_contact("Ann", "Lee", JAN_1 - 5 * 86_400)
    changed.updated = JAN_1 + 43_200
    trigger = CrmContactUpdated(CrmContactUpdated.Params())
    found = await payloads(trigger, client, JAN_1 + 3600)
    assert [(p["id"], p["firstName"], p["updatedAt"]) for p in found] == [
        (2, "Ann", "2026-01-01T12:00:00.000000+00:00")
    ]
    body = {
        "sortBy": {"fieldName": "id", "direction": "asc"},
        "updateFrom": "2025-12-31",
        "limit": 100,
        "offset": 0,
    }
    assert calls(sb) == [("POST", "/crm/v1/contacts/get-list", body)]


async def test_crm_deal_payload_has_no_contact(api: tuple[Sandbox, SendPulseClient]) -> None:
    sb, client = api
    sb.state.crm.add_contact("Ann", "Lee", JAN_1)
    sb.state.crm.add_deal("Big", JAN_1, price=500.0, contacts=[1])
    trigger = CrmDealCreated(CrmDealCreated.Params())
    assert await payloads(trigger, client, None) == [
        {
            "createdAt": "2026-01-01T00:00:00.000000+00:00",
            "currency": "USD",
            "id": 1,
            "name": "Big",
            "pipelineId": 1,
            "price": 500.0,
            "responsibleId": 1,
            "stepId": 1,
            "updatedAt": "2026-01-01T00:00:00.000000+00:00",
        }
    ]


async def test_smtp_email_sent_asks_by_day_and_keeps_the_cursor_exact(
    api: tuple[Sandbox, SendPulseClient],
) -> None:
    sb, client = api
    sb.state.smtp.send("sender@example.com", ["early@example.com"], "Early", 10, JAN_1 + 60)
    sb.state.smtp.send("sender@example.com", ["late@example.com"], "Late", 10, JAN_1 + 7200)
    trigger = SmtpEmailSent(SmtpEmailSent.Params())
    found = await payloads(trigger, client, JAN_1 + 3600)
    assert [(p["recipient"], p["send_date"]) for p in found] == [
        ("late@example.com", "2026-01-01 02:00:00")
    ]
    assert calls(sb) == [("GET", "/smtp/emails", "from=2025-12-31&limit=100&offset=0")]


async def test_a_crm_page_cut_short_before_its_total_fails_the_poll() -> None:
    client = Answers(
        {"data": {"list": [{"id": 1, "updatedAt": "2026-01-01T00:00:00Z"}], "total": 250}}
    )
    trigger = CrmContactUpdated(CrmContactUpdated.Params())
    with pytest.raises(UnexpectedResponse, match="1 rows of 100 asked at offset 0, total 250"):
        await payloads(trigger, client, None)  # type: ignore[arg-type]


async def test_a_removal_confirmed_by_a_stray_200_fails_loudly() -> None:
    trigger = SubscriberRemoved(SubscriberRemoved.Params(mailing_list_id=1))
    payload = {"email": "gone@example.com", "mailing_list_id": 1}
    with pytest.raises(UnexpectedResponse, match="not the subscriber"):
        await trigger.enrich(Answers([]), "removed", payload)  # type: ignore[arg-type]
    still = Answers({"email": "gone@example.com", "status": 1})
    assert await trigger.enrich(still, "removed", payload) is None  # type: ignore[arg-type]


async def test_error_2020202020_in_a_200_is_the_rate_limit(db_pool: asyncpg.Pool) -> None:
    async def limited(request: web.Request) -> web.Response:
        body = {"message": "Too many requests", "error_code": 2020202020}
        return web.json_response(body, status=200)

    app = web.Application()
    app.router.add_get("/campaigns", limited)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http:
            client = SendPulseClient(
                connection_id="main",
                session=http,
                base_url=f"http://127.0.0.1:{port}",
                limiter=AsyncLimiter(1000, 1),
                auth=StaticKey(connection_id="main", provider="sendpulse", key="k", pool=db_pool),
                retry=RetryPolicy(attempts=1),
            )
            with pytest.raises(RateLimited):
                await client.request("GET", "/campaigns")
    finally:
        await runner.cleanup()
