"""Campaigns (validation, the hourly limit, status over sandbox time) and senders."""

from __future__ import annotations

import base64
from typing import Any

from connector.sandbox.clock import fmt_datetime
from tests.integration.sandbox.conftest import Api

HTML = base64.b64encode(b"<h1>Hi</h1>").decode()


async def _list_with_subscribers(api: Api, count: int = 3) -> int:
    book = api.sb.state.add_book(f"List {len(api.sb.state.books)}")
    for n in range(count):
        api.sb.state.add_subscriber(book.id, f"s{n}@example.com")
    return book.id


def _campaign(book: int, **extra: Any) -> dict[str, Any]:
    body = {
        "sender_name": "Sandbox",
        "sender_email": "sender@example.com",
        "subject": "Hello",
        "body": HTML,
        "list_id": book,
    }
    body.update(extra)
    return body


async def test_create_get_and_progress_over_time(api: Api) -> None:
    book = await _list_with_subscribers(api)
    status, created = await api.post("/campaigns", json=_campaign(book, name="First"))
    assert status == 200
    assert set(created) == {
        "id",
        "status",
        "count",
        "tariff_email_qty",
        "overdraft_price",
        "ovedraft_currency",
    }
    assert (created["count"], created["status"]) == (3, 0)
    status, one = await api.get(f"/campaigns/{created['id']}")
    assert status == 200
    assert one["message"]["list_id"] == book
    assert one["message"]["body"] == HTML
    assert one["statistics"]["sent"] == 0
    settings = api.sb.state.settings
    api.sb.clock.advance(settings.campaign_review_seconds + 1)
    assert (await api.get(f"/campaigns/{created['id']}"))[1]["status"] == 2
    api.sb.clock.advance(settings.campaign_send_seconds)
    done = (await api.get(f"/campaigns/{created['id']}"))[1]
    assert done["status"] == 3
    stats = done["statistics"]
    assert stats["sent"] == 3
    assert stats["delivered"] + stats["error"] == 3
    status, detail = await api.get(f"/campaigns/{created['id']}/email/s1@example.com")
    assert status == 200
    assert set(detail) == {
        "sent_date",
        "global_status",
        "global_status_explain",
        "detail_status",
        "detail_status_explain",
    }
    listed = (await api.get(f"/addressbooks/{book}/campaigns"))[1]
    # The file's CampaignByListSummary holds the id only.
    assert listed == [{"task_id": created["id"]}]


async def test_validation_codes(api: Api) -> None:
    book = await _list_with_subscribers(api)
    empty = api.sb.state.add_book("Empty").id
    cases = [
        (_campaign(book, sender_email=""), 1003),
        (_campaign(book, sender_email="stranger@example.com"), 704),
        (_campaign(book, subject=""), 720),
        (_campaign(book, body=""), 721),
        (_campaign(book, body="not base64!"), 13),
        (_campaign(None), 722),
        (_campaign(list(range(1, 12))), 722),
        (_campaign(999), 703),
        (_campaign(empty), 211),
        (_campaign(book, send_date="2001-01-01 00:00:00"), 799),
        (_campaign(book, send_date="tomorrow"), 799),
    ]
    for body, code in cases:
        status, data = await api.post("/campaigns", json=body)
        assert (status, data["error_code"]) == (400, code), body
    assert await api.get("/campaigns") == (200, [])


async def test_four_campaigns_per_hour(api: Api) -> None:
    book = await _list_with_subscribers(api)
    for _ in range(4):
        assert (await api.post("/campaigns", json=_campaign(book)))[0] == 200
    status, data = await api.post("/campaigns", json=_campaign(book))
    assert (status, data["error_code"]) == (400, 791)
    # Drafts and test sends do not count.
    assert (await api.post("/campaigns", json=_campaign(book, type="draft")))[0] == 200
    api.sb.clock.advance(3601)
    await api.login()  # the token expired too
    assert (await api.post("/campaigns", json=_campaign(book)))[0] == 200


async def test_list_order_status_filter_patch_and_cancel(api: Api) -> None:
    book = await _list_with_subscribers(api)
    later = fmt_datetime(api.sb.clock.now() + 7200)
    first = (await api.post("/campaigns", json=_campaign(book)))[1]["id"]
    planned = (await api.post("/campaigns", json=_campaign(book, send_date=later)))[1]["id"]
    api.sb.clock.advance(api.sb.state.settings.campaign_review_seconds + 1)
    ids = [c["id"] for c in (await api.get("/campaigns", params={"order": "desc"}))[1]]
    assert ids == [planned, first]
    sending = (await api.get("/campaigns", params={"status[]": 2}))[1]
    assert [c["id"] for c in sending] == [first]
    assert [c["id"] for c in (await api.get("/campaigns", params={"planed": 1}))[1]] == [planned]
    assert (await api.get("/campaigns", params={"limit": 1, "offset": 1}))[1][0]["id"] == planned
    assert await api.call("PATCH", f"/campaigns/{planned}", json={"subject": "New"}) == (
        200,
        {"result": True, "id": planned},
    )
    assert (await api.get(f"/campaigns/{planned}"))[1]["message"]["subject"] == "New"
    assert (await api.call("PATCH", f"/campaigns/{first}", json={"subject": "x"}))[0] == 400
    assert (await api.call("DELETE", f"/campaigns/{first}"))[0] == 400
    # A book that a sending campaign uses cannot be deleted.
    assert (await api.call("DELETE", f"/addressbooks/{book}"))[0] == 422
    assert await api.call("DELETE", f"/campaigns/{planned}") == (200, {"result": True})
    assert (await api.get(f"/campaigns/{planned}"))[1]["error_code"] == 802


async def test_senders_lifecycle(api: Api) -> None:
    senders = (await api.get("/senders"))[1]
    assert senders == [{"name": "Sandbox", "email": "sender@example.com", "status": "Active"}]
    assert await api.post("/senders", json={"email": "news@corp.example", "name": "News"}) == (
        200,
        {"result": True},
    )
    assert (await api.post("/senders", json={"email": "me@gmail.com"}))[1]["error_code"] == 20
    assert (await api.post("/senders", json={"email": "news@corp.example"}))[1]["error_code"] == 902
    status, data = await api.get("/senders/news@corp.example/code")
    assert (status, data["error_code"]) == (400, 1004)
    api.sb.clock.advance(15 * 60)
    assert (await api.get("/senders/news@corp.example/code"))[0] == 200
    code = api.sb.state.campaigns.senders["news@corp.example"].code
    assert (await api.post("/senders/news@corp.example/code", json={"code": "0"}))[0] == 400
    assert (await api.post("/senders/news@corp.example/code", json={"code": code}))[0] == 200
    smtp_senders = (await api.get("/smtp/senders"))[1]
    # The SMTP file documents a list of addresses.
    assert smtp_senders == ["sender@example.com", "news@corp.example"]
    assert (await api.call("DELETE", "/senders", json={"email": "news@corp.example"}))[0] == 200
    assert (await api.call("DELETE", "/senders", json={"email": "news@corp.example"}))[0] == 400
