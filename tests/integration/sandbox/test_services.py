"""SMS, web push, Automation 360, CRM and chatbots against their documented shapes."""

from __future__ import annotations

from connector.sandbox.clock import fmt_date, fmt_datetime
from tests.integration.sandbox.conftest import Api


async def test_sms_numbers_campaigns_and_send(api: Api) -> None:
    book = api.sb.state.add_book("Phones").id
    body = {"addressBookId": book, "phones": ["380501112233", "+380501112244", "bad"]}
    status, data = await api.post("/sms/numbers", json=body)
    counters = {"added": 2, "exceptions": 1, "exists": 0}
    assert (status, data) == (200, {"result": True, "counters": counters})
    again = (await api.post("/sms/numbers", json=body))[1]
    assert again["counters"]["exists"] == 2
    # The SMS file documents a list of `{result, data}` here.
    [info] = (await api.get(f"/sms/numbers/info/{book}/380501112233"))[1]
    assert info["result"] is True
    status, created = await api.post(
        "/sms/campaigns", json={"sender": "Shop", "addressBookId": book, "body": "Sale!"}
    )
    assert status == 200
    assert set(created) == {"result", "campaign_id"}
    too_long = {"sender": "A" * 12, "addressBookId": book, "body": "x"}
    assert (await api.post("/sms/campaigns", json=too_long))[1]["error_code"] == 10
    sent = (await api.post("/sms/send", json={"sender": "Shop", "phones": ["123"], "body": "hi"}))[
        1
    ]
    assert sent["result"] is True
    now = api.sb.clock.now()
    window = {"dateFrom": fmt_datetime(now - 60), "dateTo": fmt_datetime(now + 60)}
    listed = (await api.get("/sms/campaigns/list", params=window))[1]
    assert listed["result"] is True
    assert [c["id"] for c in listed["data"]] == [created["campaign_id"], sent["campaign_id"]]
    assert set(listed["data"][0]) == {
        "id",
        "address_book_id",
        "company_price",
        "company_currency",
        "send_date",
        "date_created",
        "sender_mail_address",
        "sender_mail_name",
    }
    past = {"dateFrom": "2001-01-01 00:00:00", "dateTo": "2001-01-02 00:00:00"}
    assert (await api.get("/sms/campaigns/list", params=past))[1]["data"] == []
    assert (await api.get(f"/sms/campaigns/info/{sent['campaign_id']}"))[0] == 200
    assert (await api.get("/sms/campaigns/info/9999"))[0] == 404


async def test_push_websites_subscriptions_and_tasks(api: Api) -> None:
    state = api.sb.state
    site = state.add_push_website("https://shop.example")
    state.add_push_subscription(site.id, subscribed=api.sb.clock.now() - 3 * 86400)
    state.add_push_subscription(site.id)
    sites = (await api.get("/push/websites"))[1]
    assert sites[0]["url"] == "https://shop.example"
    assert set(sites[0]) == {"id", "url", "add_date", "status"}
    subs = (await api.get(f"/push/websites/{site.id}/subscriptions"))[1]
    assert len(subs) == 2
    assert set(subs[0]) == {
        "id",
        "browser",
        "lang",
        "os",
        "country_code",
        "city",
        "variables",
        "subscription_date",
        "status",
    }
    today = fmt_date(api.sb.clock.now())
    recent = await api.get(
        f"/push/websites/{site.id}/subscriptions", params={"subscription_date_from": today}
    )
    assert len(recent[1]) == 1
    total = await api.get(
        f"/push/websites/{site.id}/subscriptions/total", params={"subscription_date_to": today}
    )
    assert total[1] == {"total": 2}
    task = {"title": "Sale", "website_id": site.id, "body": "50% off", "ttl": 3600}
    status, created = await api.post("/push/tasks", json=task)
    assert (status, created["result"]) == (200, True)
    tasks = (await api.get("/push/tasks", params={"website_id": site.id}))[1]
    assert [t["id"] for t in tasks] == [created["id"]]
    assert (await api.post("/push/tasks", json={**task, "ttl": 90000}))[0] == 422
    assert (await api.post("/push/tasks", json={**task, "website_id": 999}))[0] == 404
    sub_id = subs[0]["id"]
    assert (await api.post("/push/subscriptions/state", json={"id": sub_id, "state": 0}))[0] == 200
    assert (await api.get(f"/push/websites/{site.id}/subscriptions"))[1][0]["status"] == 0


async def test_automation_360(api: Api) -> None:
    item = api.sb.state.add_autoresponder("Welcome")
    status, data = await api.post("/events/name/signup", json={"email": "a@example.com", "x": 1})
    assert (status, data) == (200, {"result": True})
    assert api.sb.state.channels.events[0]["event"] == "signup"
    assert (await api.post("/events/name/signup", json={"x": 1}))[0] == 400
    listed = (await api.get("/a360/autoresponders/list"))[1]
    assert [a["id"] for a in listed["data"]] == [item.id]
    one = (await api.get(f"/a360/autoresponders/{item.id}"))[1]
    assert set(one) == {
        "autoresponder",
        "flows",
        "starts",
        "in_queue",
        "end_count",
        "send_messages",
        "conversions",
    }
    assert set(one["autoresponder"]) == {"id", "name", "status", "created", "changed"}
    assert set(one["flows"][0]) == {"id", "main_id", "af_type", "created", "last_send"}
    assert (await api.get("/a360/autoresponders/999"))[0] == 404


async def test_crm_contacts(api: Api) -> None:
    api.token = api.sb.state.auth.add_api_key(api.sb.client_id)  # outlives the clock jumps
    for first in ("Ann", "Bob", "Cid"):
        status, created = await api.post(
            "/crm/v1/contacts/create",
            json={"responsibleId": 1, "firstName": first, "lastName": "X"},
        )
        assert status == 200
        api.sb.clock.advance(86400)
    assert created["data"]["firstName"] == "Cid"
    data = (await api.post("/crm/v1/contacts/get-list", json={"limit": 2}))[1]["data"]
    assert data["total"] == 3
    assert [c["firstName"] for c in data["list"]] == ["Ann", "Bob"]
    newest = {"sortBy": {"fieldName": "created_at", "direction": "desc"}, "limit": 1}
    assert (await api.post("/crm/v1/contacts/get-list", json=newest))[1]["data"]["list"][0][
        "firstName"
    ] == "Cid"
    day = fmt_date(api.sb.clock.now() - 86400)
    since = (await api.post("/crm/v1/contacts/get-list", json={"from": day}))[1]["data"]
    assert [c["firstName"] for c in since["list"]] == ["Cid"]
    assert (await api.post("/crm/v1/contacts/get-list", json={"limit": 101}))[0] == 422
    bad_sort = {"sortBy": {"fieldName": "email"}}
    assert (await api.post("/crm/v1/contacts/get-list", json=bad_sort))[0] == 422
    assert (await api.post("/crm/v1/contacts/create", json={}))[0] == 422


async def test_crm_deals(api: Api) -> None:
    contact = api.sb.state.crm.add_contact("Ann", "X", api.sb.clock.now())
    body = {"pipelineId": 1, "stepId": 1, "name": "Big", "price": 500, "currency": "EUR"}
    status, created = await api.post("/crm/v1/deals", json={**body, "contact": [contact.id]})
    assert status == 200
    # The Deal schema has no contacts; the deal keeps them all the same.
    assert "contact" not in created["data"]
    assert api.sb.state.crm.deals[created["data"]["id"]].contacts == [contact.id]
    await api.post("/crm/v1/deals", json={**body, "name": "Small", "price": 5})
    assert (await api.post("/crm/v1/deals", json={**body, "stepId": 9}))[0] == 422
    assert (await api.post("/crm/v1/deals", json={**body, "contact": [999]}))[0] == 422
    listed = (await api.post("/crm/v1/deals/get-list", json={}))[1]
    assert listed["meta"] == {"total": 2}
    assert [d["name"] for d in listed["data"]] == ["Big", "Small"]
    cheap = {"filter": [{"name": "price", "expression": "lt", "value": 100}]}
    assert [
        d["name"] for d in (await api.post("/crm/v1/deals/get-list", json=cheap))[1]["data"]
    ] == ["Small"]
    api.sb.clock.advance(10)
    moved = api.sb.state.crm.move_deal(created["data"]["id"], 2, api.sb.clock.now())
    recent = {
        "filter": [
            {"name": "updatedAt", "expression": "gt", "value": fmt_datetime(moved.updated - 5)}
        ],
        "sortBy": {"fieldName": "updatedAt", "direction": "desc"},
    }
    rows = (await api.post("/crm/v1/deals/get-list", json=recent))[1]["data"]
    assert [(d["name"], d["stepId"]) for d in rows] == [("Big", 2)]
    like = {"filter": [{"name": "name", "expression": "like", "value": "%ig%"}]}
    assert len((await api.post("/crm/v1/deals/get-list", json=like))[1]["data"]) == 1
    within = {"filter": [{"name": "id", "expression": "in", "value": [1, 2]}]}
    assert (await api.post("/crm/v1/deals/get-list", json=within))[1]["meta"]["total"] == 2
    bad = {"filter": [{"name": "price", "expression": "near", "value": 1}]}
    assert (await api.post("/crm/v1/deals/get-list", json=bad))[0] == 422


async def test_chatbots(api: Api) -> None:
    chat = api.sb.state.chatbots
    now = api.sb.clock.now()
    bot = chat.add_bot("telegram", "Shop bot", now)
    ann = chat.add_contact(bot.id, "Ann", now, tags=["vip"], variables={"plan": "pro"})
    bob = chat.add_contact(bot.id, "Bob", now + 1)
    bots = (await api.get("/chatbots/bots"))[1]
    assert bots["success"] is True
    assert set(bots["data"][0]) == {"id", "channel_data", "inbox", "status", "created_at"}
    got = (await api.get("/telegram/contacts/get", params={"id": ann.id}))[1]
    assert got["data"]["id"] == ann.id
    assert set(got["data"]) == {
        "id",
        "bot_id",
        "status",
        "channel_data",
        "tags",
        "variables",
        "is_chat_opened",
        "last_activity_at",
        "created_at",
    }
    assert (await api.get("/whatsapp/contacts/get", params={"id": ann.id}))[0] == 404
    tagged = (
        await api.get("/telegram/contacts/getByTag", params={"tag": "vip", "bot_id": bot.id})
    )[1]
    assert [c["id"] for c in tagged["data"]] == [ann.id]
    by_var = {"variable_name": "plan", "variable_value": "pro", "bot_id": bot.id}
    assert len((await api.get("/telegram/contacts/getByVariable", params=by_var))[1]["data"]) == 1
    status, sent = await api.post(
        "/telegram/contacts/sendText", json={"contact_id": bob.id, "text": "Hi"}
    )
    assert (status, sent["success"]) == (200, True)
    assert (await api.post("/telegram/contacts/sendText", json={"contact_id": "x", "text": "Hi"}))[
        0
    ] == 404
    run = {"contact_id": ann.id, "flow_id": "f1", "external_data": {"a": 1}}
    assert (await api.post("/telegram/flows/run", json=run))[0] == 200
    assert chat.flow_runs[0]["external_data"] == {"a": 1}
    # Dialogs page with a search_after cursor.
    first = (await api.get("/chatbots/dialogs", params={"size": 1, "order": "asc"}))[1]["data"]
    assert set(first) == {"list", "total", "size", "search_after", "order"}
    assert first["total"] == 2
    assert [d["contact"]["id"] for d in first["list"]] == [ann.id]
    nxt = await api.get(
        "/chatbots/dialogs",
        params={"size": 1, "order": "asc", "search_after": first["search_after"]},
    )
    assert [d["contact"]["id"] for d in nxt[1]["data"]["list"]] == [bob.id]
    messages = (await api.get("/telegram/chats/messages", params={"contact_id": bob.id}))[1]
    assert [m["data"]["text"] for m in messages["data"]] == ["Hi"]
