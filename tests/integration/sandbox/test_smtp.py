"""SMTP: send, list by window with filters, one record, info, bounces, unsubscribes."""

from __future__ import annotations

import base64
import json
from typing import Any

from connector.sandbox.clock import fmt_date
from tests.integration.sandbox.conftest import Api

HTML = base64.b64encode(b"<p>Hi</p>").decode()
RECORD_KEYS = {
    "id",
    "sender",
    "total_size",
    "sender_ip",
    "smtp_answer_code",
    "smtp_answer_code_explain",
    "smtp_answer_subcode",
    "smtp_answer_data",
    "used_ip",
    "recipient",
    "subject",
    "send_date",
    "tracking",
}


def _email(*to: str, **extra: Any) -> dict[str, Any]:
    email = {
        "subject": "Receipt",
        "from": {"name": "Shop", "email": "sender@example.com"},
        "to": [{"email": address} for address in to],
        "html": HTML,
        "text": "Hi",
    }
    email.update(extra)
    return {"email": email}


async def test_send_then_list_and_get(api: Api) -> None:
    status, sent = await api.post("/smtp/emails", json=_email("a@example.com", "b@example.com"))
    assert status == 200
    assert sent["result"] is True
    assert isinstance(sent["id"], str)
    assert len(sent["id"].split("-")) == 3
    rows = (await api.get("/smtp/emails"))[1]
    assert [r["recipient"] for r in rows] == ["a@example.com", "b@example.com"]
    assert set(rows[0]) == RECORD_KEYS
    assert rows[0]["id"] == sent["id"]
    assert set(rows[0]["tracking"]) == {"click", "open", "link", "client_info"}
    assert (await api.get(f"/smtp/emails/{sent['id']}"))[1]["recipient"] == "a@example.com"
    status, data = await api.get("/smtp/emails/nope-nope-00")
    assert (status, data["error_code"]) == (400, 14)
    info = (await api.post("/smtp/emails/info", json={"emails": [rows[1]["id"], "x"]}))[1]
    assert [r["recipient"] for r in info] == ["b@example.com"]
    assert (await api.get("/smtp/emails/total"))[1] == {"total": 2}


async def test_list_window_and_filters(api: Api) -> None:
    await api.post("/smtp/emails", json=_email("a@example.com"))
    api.sb.clock.advance(2 * 86400)
    await api.login()
    await api.post("/smtp/emails", json=_email("b@example.com"))
    today = fmt_date(api.sb.clock.now())
    rows = (await api.get("/smtp/emails", params={"from": today, "to": today}))[1]
    assert [r["recipient"] for r in rows] == ["b@example.com"]
    earlier = fmt_date(api.sb.clock.now() - 2 * 86400)
    rows = (await api.get("/smtp/emails", params={"from": earlier, "to": earlier}))[1]
    assert [r["recipient"] for r in rows] == ["a@example.com"]
    rows = (await api.get("/smtp/emails", params={"recipient": "a@example.com"}))[1]
    assert len(rows) == 1
    assert (await api.get("/smtp/emails", params={"sender": "other@example.com"}))[1] == []
    # The SMTP file documents the list's refusals as HTTP 422.
    refused = await api.get("/smtp/emails", params={"from": "yesterday"})
    assert (refused[0], refused[1]["error_code"]) == (422, 422)
    assert (await api.get("/smtp/emails", params={"limit": 501}))[0] == 422


async def test_send_validation(api: Api) -> None:
    cases = [
        (_email("a@example.com", **{"from": {"email": ""}}), 10),
        (_email("a@example.com", **{"from": {"email": "x@unknown.example"}}), 422),
        (_email(), 11),
        (_email("a@example.com", subject=""), 12),
        (_email("a@example.com", html="", text=""), 13),
        (_email(*[f"u{i}@example.com" for i in range(101)]), 550),
    ]
    for body, code in cases:
        status, data = await api.post("/smtp/emails", json=body)
        # The SMTP file documents every refused send as HTTP 422.
        assert (status, data["error_code"]) == (422, code), body
    assert (await api.post("/smtp/emails", json={}))[0] == 422
    # pysendpulse sends the `email` object as a JSON string.
    wrapped = {"email": json.dumps(_email("a@example.com")["email"])}
    assert (await api.post("/smtp/emails", json=wrapped))[0] == 200


async def test_bounces_per_day(api: Api) -> None:
    await api.post("/smtp/emails", json=_email("gone@bounce.example.com", "ok@example.com"))
    day = fmt_date(api.sb.clock.now())
    data = (await api.get("/smtp/bounces/day", params={"date": day}))[1]
    assert (data["total"], data["found"]) == (1, 1)
    assert data["emails"][0]["email_to"] == "gone@bounce.example.com"
    assert set(data["emails"][0]) == {
        "email_to",
        "sender",
        "send_date",
        "subject",
        "smtp_answer_code",
        "smtp_answer_subcode",
        "smtp_answer_data",
    }
    assert (await api.get("/smtp/bounces/day", params={"date": "2001-01-01"}))[1]["total"] == 0


async def test_unsubscribes(api: Api) -> None:
    api.sb.state.smtp.unsubscribe("link@example.com", api.sb.clock.now())
    body = {"emails": [{"email": "user@example.com", "comment": "asked"}]}
    assert await api.post("/smtp/unsubscribe", json=body) == (200, {"result": True})
    rows = (await api.get("/smtp/unsubscribe", params={"date": fmt_date(api.sb.clock.now())}))[1]
    assert [(r["email"], r["unsubscribe_by_link"]) for r in rows] == [
        ("link@example.com", 1),
        ("user@example.com", 0),
    ]
    assert set(rows[0]) == {
        "email",
        "unsubscribe_by_link",
        "unsubscribe_by_user",
        "spam_complaint",
        "date",
    }
    search = await api.get("/smtp/unsubscribe/search", params={"email": "user@example.com"})
    assert search == (200, {"result": True})
    await api.call("DELETE", "/smtp/unsubscribe", json={"emails": ["user@example.com"]})
    search = await api.get("/smtp/unsubscribe/search", params={"email": "user@example.com"})
    assert search[1] == {"result": False}
