"""Mailing lists and subscribers: shapes, paging, upserts, errors and the blacklist."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from tests.integration.sandbox.conftest import Api

BOOK_KEYS = {
    "id",
    "name",
    "all_email_qty",
    "active_email_qty",
    "inactive_email_qty",
    "creationdate",
    "status",
    "status_explain",
}


async def _book(api: Api, name: str = "News") -> int:
    status, data = await api.post("/addressbooks", json={"bookName": name})
    assert status == 200
    assert set(data) == {"id"}
    book_id: int = data["id"]
    return book_id


async def test_create_list_get_rename_delete(api: Api) -> None:
    first = await _book(api, "News")
    second = await _book(api, "Leads")
    assert second == first + 1
    status, books = await api.get("/addressbooks")
    assert status == 200
    assert [b["name"] for b in books] == ["News", "Leads"]
    assert set(books[0]) == BOOK_KEYS
    assert len(books[0]["creationdate"]) == 19
    status, one = await api.get(f"/addressbooks/{first}")
    assert status == 200
    assert isinstance(one, list)
    assert len(one) == 1
    assert one[0]["id"] == first
    status, paged = await api.get("/addressbooks", params={"limit": 1, "offset": 1})
    assert [b["name"] for b in paged] == ["Leads"]
    assert await api.call("PUT", f"/addressbooks/{first}", json={"name": "Weekly"}) == (
        200,
        {"result": True},
    )
    assert (await api.get(f"/addressbooks/{first}"))[1][0]["name"] == "Weekly"
    assert await api.call("DELETE", f"/addressbooks/{first}") == (200, {"result": True})
    assert await api.get(f"/addressbooks/{first}") == (
        404,
        {"message": "Book not found", "error_code": 213},
    )


async def test_book_errors(api: Api) -> None:
    await _book(api, "News")
    status, data = await api.post("/addressbooks", json={"bookName": "News"})
    assert (status, data["error_code"]) == (422, 203)
    status, data = await api.post("/addressbooks", json={})
    assert (status, data) == (422, {"message": "Argument bookName missing", "error_code": 422})
    assert (await api.call("PUT", "/addressbooks/77", json={"name": "x"}))[1]["error_code"] == 213
    assert (await api.call("DELETE", "/addressbooks/abc"))[0] == 404
    status, data = await api.get("/addressbooks", params={"limit": 101})
    assert (status, data["error_code"]) == (422, 422)
    assert "100" in data["message"]
    assert (await api.get("/addressbooks", params={"offset": -1}))[0] == 422
    assert (await api.get("/addressbooks", params={"limit": "ten"}))[0] == 422


async def test_add_emails_upserts_and_registers_variables(api: Api) -> None:
    book = await _book(api)
    emails = [
        {"email": "A@example.com", "variables": {"name": "Ann", "age": 31}},
        "b@example.com",
        {"email": "c@example.com", "variables": {"joined": "2024-05-01"}},
    ]
    assert await api.post(f"/addressbooks/{book}/emails", json={"emails": emails}) == (
        200,
        {"result": True},
    )
    status, rows = await api.get(f"/addressbooks/{book}/emails")
    assert status == 200
    assert [r["email"] for r in rows] == ["a@example.com", "b@example.com", "c@example.com"]
    assert set(rows[0]) == {"email", "status", "status_explain", "phone", "variables"}
    assert rows[0]["status"] == 1
    assert rows[0]["status_explain"] == "Active"
    assert rows[0]["variables"] == {"name": "Ann", "age": 31}
    status, variables = await api.get(f"/addressbooks/{book}/variables")
    assert variables == [
        {"name": "name", "type": "string"},
        {"name": "age", "type": "number"},
        {"name": "joined", "type": "date"},
    ]
    # Re-adding is an upsert: same place, merged variables; dont_update leaves them alone.
    again = {"emails": [{"email": "a@example.com", "variables": {"age": 32}}]}
    await api.post(f"/addressbooks/{book}/emails", json=again)
    rows = (await api.get(f"/addressbooks/{book}/emails"))[1]
    assert rows[0]["variables"] == {"name": "Ann", "age": 32}
    assert len(rows) == 3
    frozen = {"emails": [{"email": "a@example.com", "variables": {"age": 99}}], "dont_update": 1}
    await api.post(f"/addressbooks/{book}/emails", json=frozen)
    assert (await api.get(f"/addressbooks/{book}/emails"))[1][0]["variables"]["age"] == 32
    summary = (await api.get(f"/addressbooks/{book}"))[1][0]
    assert (summary["all_email_qty"], summary["active_email_qty"]) == (3, 3)


async def test_add_emails_errors_and_double_opt_in(api: Api) -> None:
    book = await _book(api)
    # Refusals as the file documents them: 422 with its messages.
    status, data = await api.post(f"/addressbooks/{book}/emails", json={"emails": []})
    assert (status, data) == (422, {"message": "Argument emails missing", "error_code": 422})
    status, data = await api.post(f"/addressbooks/{book}/emails", json={"emails": ["nope"]})
    assert (status, data["message"]) == (422, "Argument email is invalid")
    status, data = await api.post("/addressbooks/999/emails", json={"emails": ["a@b.co"]})
    assert (status, data["error_code"]) == (404, 213)
    forced = {"emails": ["d@example.com"], "confirmation": "force"}
    refused = await api.post(f"/addressbooks/{book}/emails", json=forced)
    assert refused == (422, {"message": "Argument sender_email missing", "error_code": 422})
    forced["sender_email"] = "me@example.com"
    assert (await api.post(f"/addressbooks/{book}/emails", json=forced))[0] == 200
    row = (await api.get(f"/addressbooks/{book}/emails"))[1][0]
    assert (row["status"], row["status_explain"]) == (2, "Confirmation requested")


async def test_subscriber_quota_gives_tariff_error(api: Api) -> None:
    api.sb.configure(subscriber_quota=1)
    book = await _book(api)
    assert (await api.post(f"/addressbooks/{book}/emails", json={"emails": ["a@b.co"]}))[0] == 200
    status, data = await api.post(f"/addressbooks/{book}/emails", json={"emails": ["c@d.co"]})
    assert (status, data["error_code"]) == (403, 3030303030)


async def test_paging_order_filters_and_total(api: Api) -> None:
    book = await _book(api)
    emails = [f"u{i:03d}@example.com" for i in range(150)]
    for chunk in (emails[:100], emails[100:]):
        await api.post(f"/addressbooks/{book}/emails", json={"emails": chunk})
    await api.post(f"/addressbooks/{book}/emails/unsubscribe", json={"emails": emails[:5]})
    page = (await api.get(f"/addressbooks/{book}/emails", params={"limit": 100, "offset": 100}))[1]
    assert [r["email"] for r in page] == emails[100:]
    status, data = await api.get(f"/addressbooks/{book}/emails", params={"limit": 101})
    assert (status, data["error_code"]) == (422, 422)
    desc = (await api.get(f"/addressbooks/{book}/emails", params={"order": "desc", "limit": 3}))[1]
    assert [r["email"] for r in desc] == emails[:-4:-1]
    desc2 = (
        await api.get(
            f"/addressbooks/{book}/emails", params={"order": "desc", "limit": 3, "offset": 148}
        )
    )[1]
    assert [r["email"] for r in desc2] == [emails[1], emails[0]]
    assert (await api.get(f"/addressbooks/{book}/emails", params={"order": "up"}))[0] == 422
    inactive = (await api.get(f"/addressbooks/{book}/emails", params={"not_active": 1}))[1]
    assert [r["email"] for r in inactive] == emails[:5]
    assert {r["status"] for r in inactive} == {4}
    active = (await api.get(f"/addressbooks/{book}/emails", params={"active": "true"}))[1]
    assert active[0]["email"] == emails[5]
    assert (await api.get(f"/addressbooks/{book}/emails/total"))[1] == {"total": 150}
    assert (await api.get(f"/addressbooks/{book}/emails/total", params={"active": 1}))[1] == {
        "total": 145
    }


async def test_delete_and_per_email_lookups(api: Api) -> None:
    book = await _book(api)
    other = await _book(api, "Other")
    add = {"emails": [{"email": "a@example.com", "variables": {"name": "Ann"}}, "b@example.com"]}
    await api.post(f"/addressbooks/{book}/emails", json=add)
    await api.post(f"/addressbooks/{other}/emails", json={"emails": ["a@example.com"]})
    status, info = await api.get(f"/addressbooks/{book}/emails/a@example.com")
    assert status == 200
    # No phone, no `phone`: the file types it as a string.
    assert info == {
        "email": "a@example.com",
        "abook_id": str(book),
        "status": 1,
        "status_explain": "Active",
        "variables": [{"name": "name", "type": "string", "value": "Ann"}],
    }
    assert (await api.get(f"/addressbooks/{book}/emails/zz@example.com"))[0] == 404
    everywhere = (await api.get("/emails/a@example.com"))[1]
    assert [(r["book_id"], r["status"]) for r in everywhere] == [(book, 1), (other, 1)]
    details = (await api.get("/emails/a@example.com/details"))[1]
    assert [d["list_id"] for d in details] == [book, other]
    assert set(details[0]) == {"list_name", "list_id", "add_date", "source"}
    assert (await api.get("/emails/zz@example.com/details"))[0] == 404
    many = (await api.post("/emails", json={"emails": ["a@example.com", "b@example.com"]}))[1]
    assert [len(many["a@example.com"]), len(many["b@example.com"])] == [2, 1]
    assert await api.call(
        "DELETE", f"/addressbooks/{book}/emails", json={"emails": ["b@example.com"]}
    ) == (200, {"result": True})
    assert (await api.get(f"/addressbooks/{book}/emails/total"))[1] == {"total": 1}
    too_many = {"emails": [f"x{i}@example.com" for i in range(101)]}
    assert (await api.call("DELETE", f"/addressbooks/{book}/emails", json=too_many))[0] == 422
    assert (await api.call("DELETE", "/emails/a@example.com"))[1] == {"result": True}
    assert (await api.get("/emails/a@example.com"))[0] == 404


async def test_set_variables(api: Api) -> None:
    book = await _book(api)
    await api.post(f"/addressbooks/{book}/emails", json={"emails": ["a@example.com"]})
    body = {"email": "a@example.com", "variables": [{"name": "city", "value": "Oslo"}]}
    assert await api.post(f"/addressbooks/{book}/emails/variable", json=body) == (
        200,
        {"result": True},
    )
    assert (await api.get(f"/addressbooks/{book}/emails"))[1][0]["variables"] == {"city": "Oslo"}
    body["email"] = "zz@example.com"
    status, data = await api.post(f"/addressbooks/{book}/emails/variable", json=body)
    assert (status, data["error_code"]) == (404, 502)
    found = (await api.get(f"/addressbooks/{book}/variables/city/Oslo"))[1]
    assert found == [{"email": "a@example.com", "status": 1, "status_explain": "Active"}]


async def test_blacklist_takes_base64_comma_lists(api: Api) -> None:
    encoded = base64.b64encode(b"a@example.com,b@example.com").decode()
    assert await api.post("/blacklist", json={"emails": encoded, "comment": "spam"}) == (
        200,
        {"result": True},
    )
    assert (await api.get("/blacklist"))[1] == ["a@example.com", "b@example.com"]
    one = base64.b64encode(b"a@example.com").decode()
    await api.call("DELETE", "/blacklist", json={"emails": one})
    assert (await api.get("/blacklist"))[1] == ["b@example.com"]
    assert (await api.post("/blacklist", json={"emails": "not base64!"}))[0] == 400


async def test_wire_tolerance_of_the_official_sdks(api: Api) -> None:
    book = await _book(api)
    # List fields as JSON strings inside the JSON body (pysendpulse).
    add = {"emails": json.dumps([{"email": "a@example.com", "variables": {"n": 1}}])}
    assert (await api.post(f"/addressbooks/{book}/emails", json=add))[0] == 200
    await api.post(f"/addressbooks/{book}/emails", json={"emails": json.dumps(["b@example.com"])})
    # GET parameters as one URL-encoded JSON blob, and a double slash in the path.
    blob = quote(json.dumps({"limit": 1, "offset": 1}))
    url = f"{api.sb.base_url}//addressbooks/{book}/emails?{blob}"
    async with api.session.get(url, headers={"Authorization": f"Bearer {api.token}"}) as resp:
        assert resp.status == 200
        assert [r["email"] for r in await resp.json()] == ["b@example.com"]
    assert api.sb.requests()[-1].path == f"/addressbooks/{book}/emails"
    status, data = await api.get("/no/such/path")
    assert (status, data["error_code"]) == (404, 404)
