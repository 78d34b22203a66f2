"""The operations the connector uses are the specs' own; and the checker catches misreadings.

The second half feeds the checker exchanges in the shapes the connector and the sandbox used
before they were held to the specs (one per item the specs showed wrong), and the shapes used
now: each old one must be a mismatch, each new one must pass.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from connector.providers.chatbots_api import CHANNELS
from connector.providers.sendpulse_client import USER_AGENT
from tests.contract.checks import check_exchanges, template_matches, undocumented_table
from tests.contract.spec import ERRATA, Exchange, shared_contract
from triggers import TRIGGERS

CONTRACT = shared_contract()
# Loading the specs takes seconds of CPU in each process that reads them: under xdist
# (--dist loadgroup) these tests share one worker, so one load serves them all.
pytestmark = pytest.mark.xdist_group("contract-specs")


def _calls(text: str) -> list[tuple[str, str]]:
    """``METHOD /path`` pairs named in a trigger's ``api_calls`` line."""
    found = []
    for method, path in re.findall(r"\b(GET|POST|PUT|PATCH|DELETE) (/[^\s?]*)", text):
        if "{channel}" in path:
            found += [(method, path.replace("/{channel}", c.base)) for c in CHANNELS.values()]
        else:
            found.append((method, path))
    return found


def test_every_trigger_call_is_documented_or_listed() -> None:
    table = undocumented_table()
    missing = []
    for trigger in TRIGGERS:
        if trigger.provider != "sendpulse":
            continue
        for line in trigger.api_calls:
            for method, path in _calls(line):
                concrete = re.sub(r"\{[^}]+\}", "1", path)
                if CONTRACT.find(method, concrete) is None and not any(
                    template_matches(row, method, concrete) for row in table
                ):
                    missing.append(f"{trigger.key}: {method} {path}")
    assert missing == []


def test_the_undocumented_table_lists_only_undocumented_calls() -> None:
    table = undocumented_table()
    assert "POST /events/name/{event}" in table
    for row in table:
        method, _, path = row.partition(" ")
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        assert CONTRACT.find(method, concrete) is None, f"{row} is in the specs after all"


def test_every_erratum_finds_what_it_mends() -> None:
    CONTRACT.documents  # noqa: B018 - loading applies them; a missing target raises KeyError
    assert len(CONTRACT.errata_applied) == sum(len(v) for v in ERRATA.values())


def ours(method: str, path: str, body: Any = None, query: str = "") -> Exchange:
    return Exchange(
        method=method,
        path=path,
        query=query,
        request_type="application/json" if body is not None else None,
        request_body=json.dumps(body) if body is not None else None,
        user_agent=USER_AGENT,
        status=200,
        response_type="application/json",
        response_body=None,
        # Only the request is under test: the answer is taken for a fault, and skipped.
        fault="none answered",
    )


def answer(method: str, path: str, status: int, body: Any, query: str = "") -> Exchange:
    return Exchange(
        method=method,
        path=path,
        query=query,
        request_type=None,
        request_body=None,
        user_agent="Python/3.11 aiohttp",
        status=status,
        response_type="application/json",
        response_body=json.dumps(body),
    )


def mismatches(exchange: Exchange) -> list[str]:
    return check_exchanges([exchange], CONTRACT, undocumented_table()).mismatches


DIALOG_THEN = {
    "id": "c1",
    "bot_id": "b1",
    "contact_id": "c1",
    "channel": "telegram",
    "contact": {"id": "c1"},
    "last_activity_at": "2025-01-01 00:00:00+00:00",
}
DIALOG_NOW = {
    "_id": "d1",
    "bot_id": "b1",
    "contact": {"id": "c1", "full_name": "Ann"},
    "last_inbox_message": {"text": "hi", "date": "2025-01-01T00:00:00.000Z"},
    "service": 3,
    "user_id": 1,
    "inbox_unread_count": 0,
    "is_chat_opened": True,
    "created_at": "2025-01-01T00:00:00.000Z",
    "updated_at": "2025-01-01T00:00:00.000Z",
}
DEAL = {"id": 1, "pipelineId": 1, "stepId": 1, "name": "D", "price": 1.0, "currency": "USD"}
EMAIL = {"from": {"name": "", "email": "a@example.com"}, "to": [{"email": "b@example.com"}]}

# (item of the issue, the old exchange, the exchange now)
CASES = [
    (
        "1 dialog rows",
        answer("GET", "/chatbots/dialogs", 200, {"success": True, "data": {"list": [DIALOG_THEN]}}),
        answer("GET", "/chatbots/dialogs", 200, {"success": True, "data": {"list": [DIALOG_NOW]}}),
    ),
    (
        "2 live chat base path",
        ours("POST", "/livechat/contacts/send", {"contact_id": "c", "messages": []}),
        ours("POST", "/live-chat/contacts/send", {"contact_id": "c", "messages": []}),
    ),
    (
        "2 viber chatbots base path",
        ours("POST", "/viber/flows/run", {"contact_id": "c", "flow_id": "f"}),
        ours("POST", "/viber/chatbots/flows/run", {"contact_id": "c", "flow_id": "f"}),
    ),
    (
        "3 whatsapp has no sendText",
        ours("POST", "/whatsapp/contacts/sendText", {"contact_id": "c", "text": "hi"}),
        ours(
            "POST",
            "/whatsapp/contacts/send",
            {"contact_id": "c", "message": {"type": "text", "text": {"body": "hi"}}},
        ),
    ),
    (
        "4 contacts sort by updated_at",
        ours(
            "POST",
            "/crm/v1/contacts/get-list",
            {"sortBy": {"fieldName": "updated_at", "direction": "desc"}, "limit": 100},
        ),
        ours(
            "POST",
            "/crm/v1/contacts/get-list",
            {
                "sortBy": {"fieldName": "id", "direction": "asc"},
                "updateFrom": "2025-01-01",
                "limit": 100,
                "offset": 0,
            },
        ),
    ),
    (
        "5 contact create shape",
        ours(
            "POST",
            "/crm/v1/contacts/create",
            {"firstName": "Ann", "emails": [{"email": "a@example.com", "isMain": True}]},
        ),
        ours("POST", "/crm/v1/contacts/create", {"responsibleId": 1, "firstName": "Ann"}),
    ),
    (
        "6 phones with variables",
        ours("POST", "/sms/numbers", {"addressBookId": 1, "phones": {"380501112233": {"a": 1}}}),
        ours(
            "POST",
            "/sms/numbers/variables",
            {
                "addressBookId": 1,
                "phones": {"380501112233": [[{"name": "a", "type": "number", "value": "1"}]]},
            },
        ),
    ),
    (
        "7 SMTP list from is a date",
        ours("GET", "/smtp/emails", query="from=2025-01-01+10%3A00%3A00&limit=100&offset=0"),
        ours("GET", "/smtp/emails", query="from=2025-01-01&limit=100&offset=0"),
    ),
    (
        "8 SMTP send needs a subject with a template",
        ours("POST", "/smtp/emails", {"email": {**EMAIL, "template": {"id": 1, "variables": {}}}}),
        ours(
            "POST",
            "/smtp/emails",
            {"email": {**EMAIL, "subject": "Hi", "template": {"id": 1, "variables": {}}}},
        ),
    ),
    (
        "9 SMTP refusals are 422",
        answer("POST", "/smtp/emails", 400, {"message": "Subject is missing", "error_code": 12}),
        answer(
            "POST", "/smtp/emails", 422, {"message": "Argument subject missing", "error_code": 12}
        ),
    ),
    (
        "10 deals have no contact",
        answer("POST", "/crm/v1/deals/get-list", 200, {"data": [{**DEAL, "contact": [1]}]}),
        answer("POST", "/crm/v1/deals/get-list", 200, {"data": [DEAL], "meta": {"total": 1}}),
    ),
]


@pytest.mark.parametrize(("item", "then", "now"), CASES, ids=[c[0] for c in CASES])
def test_the_old_shape_is_a_mismatch_and_the_new_one_passes(
    item: str, then: Exchange, now: Exchange
) -> None:
    assert mismatches(then), f"{item}: the old shape passed"
    assert mismatches(now) == [], item
