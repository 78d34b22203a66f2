"""The remaining endpoints and control calls: shapes and errors."""

from __future__ import annotations

import socket

import aiohttp

from tests.integration.sandbox.conftest import Api, Receiver


async def test_book_cost_and_unknown_ids(api: Api) -> None:
    book = api.sb.state.add_book("Costly")
    api.sb.state.add_subscriber(book.id, "a@example.com")
    status, cost = await api.get(f"/addressbooks/{book.id}/cost")
    assert status == 200
    assert cost["cur"] == "USD"
    assert cost["sent_emails_qty"] == 1
    assert (await api.get("/addressbooks/999/cost"))[1]["error_code"] == 213
    assert (await api.get("/addressbooks/999/variables"))[0] == 404
    assert (await api.get("/addressbooks/999/emails"))[0] == 404
    assert (await api.get("/addressbooks/999/emails/total"))[0] == 404
    assert (await api.get("/campaigns/abc"))[1]["error_code"] == 802


async def test_sms_cancel_only_before_sending(api: Api) -> None:
    book = api.sb.state.add_book("Phones").id
    await api.post("/sms/numbers", json={"addressBookId": book, "phones": ["380501112233"]})
    later = {"sender": "Shop", "addressBookId": book, "body": "x", "date": "2099-01-01 10:00:00"}
    planned = (await api.post("/sms/campaigns", json=later))[1]["campaign_id"]
    now = (await api.post("/sms/campaigns", json={**later, "date": None}))[1]["campaign_id"]
    assert (await api.call("PUT", f"/sms/campaigns/cancel/{now}"))[0] == 400
    assert await api.call("PUT", f"/sms/campaigns/cancel/{planned}") == (200, {"result": True})
    assert (await api.get(f"/sms/campaigns/info/{planned}"))[0] == 404
    empty = api.sb.state.add_book("No phones").id
    status, data = await api.post(
        "/sms/campaigns", json={"sender": "Shop", "addressBookId": empty, "body": "x"}
    )
    assert (status, data["error_code"]) == (400, 211)
    assert (await api.get(f"/sms/numbers/info/{book}/000"))[0] == 404


async def test_push_totals(api: Api) -> None:
    site = api.sb.state.add_push_website("https://a.example")
    api.sb.state.add_push_website("https://b.example")
    assert (await api.get("/push/websites/total"))[1] == {"total": 2}
    assert (await api.get(f"/push/websites/{site.id}/subscriptions/total"))[1] == {"total": 0}
    assert (await api.get("/push/websites/999/subscriptions"))[0] == 404
    bad = {"id": 1, "state": 5}
    assert (await api.post("/push/subscriptions/state", json=bad))[0] == 422


async def test_chatbot_tags_variables_and_send(api: Api) -> None:
    chat = api.sb.state.chatbots
    bot = chat.add_bot("whatsapp", "Bot", api.sb.clock.now())
    contact = chat.add_contact(bot.id, "Ann", api.sb.clock.now())
    body = {"contact_id": contact.id, "tags": ["new", "lead"]}
    assert (await api.post("/whatsapp/contacts/setTag", json=body))[1] == {"success": True}
    assert contact.tags == ["new", "lead"]
    body = {"contact_id": contact.id, "variable_name": "plan", "variable_value": "pro"}
    assert (await api.post("/whatsapp/contacts/setVariable", json=body))[0] == 200
    assert contact.variables == {"plan": "pro"}
    # WhatsApp's own shape: one `message`, its text in `text.body`.
    message = {"contact_id": contact.id, "message": {"type": "text", "text": {"body": "Hi"}}}
    assert (await api.post("/whatsapp/contacts/send", json=message))[1]["success"] is True
    assert len(chat.messages) == 1 and chat.messages[0].text == "Hi"
    listed = {"contact_id": contact.id, "messages": [{"type": "text", "text": {"body": "Hi"}}]}
    assert (await api.post("/whatsapp/contacts/send", json=listed))[0] == 422
    assert (await api.post("/whatsapp/contacts/send", json={"contact_id": contact.id}))[0] == 422
    status, data = await api.get(
        "/whatsapp/contacts/getByTag", params={"tag": "new", "bot_id": "x"}
    )
    assert (status, data["success"]) == (404, False)
    assert (await api.get("/whatsapp/contacts/getByTag"))[0] == 422
    assert (await api.get("/whatsapp/contacts/getByVariable", params={"bot_id": bot.id}))[0] == 422
    assert (await api.get("/chatbots/dialogs", params={"size": 500}))[0] == 422
    assert (await api.get("/chatbots/dialogs", params={"search_after": "x:y"}))[0] == 422
    assert (await api.get("/fax/contacts/get", params={"id": contact.id}))[0] == 404


async def test_webhook_change_and_bulk_delete(api: Api) -> None:
    rows = (
        await api.post(
            "/v2/email-service/webhook",
            json={"url": "http://127.0.0.1:1/a", "actions": ["delete", "unsubscribe"]},
        )
    )[1]["data"]
    first = rows[0]["id"]
    changed = await api.call(
        "PUT", f"/v2/email-service/webhook/{first}", json={"url": "http://127.0.0.1:1/b"}
    )
    assert changed[1] == {"success": True, "data": [True]}
    assert api.sb.state.webhooks.registrations[first].url == "http://127.0.0.1:1/b"
    assert (await api.get("/v2/email-service/webhook/999"))[0] == 404
    gone = await api.call(
        "DELETE", "/v2/email-service/webhook", json={"url": "http://127.0.0.1:1/a"}
    )
    assert gone[0] == 200
    assert [r["id"] for r in (await api.get("/v2/email-service/webhook"))[1]["data"]] == [first]
    await api.call("DELETE", "/v2/email-service/webhook", json={"ids": [first]})
    assert (await api.get("/v2/email-service/webhook"))[1]["data"] == []
    assert (await api.call("DELETE", "/v2/email-service/webhook", json={}))[0] == 422


async def test_failed_webhook_posts_are_recorded_not_retried(api: Api, receiver: Receiver) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    await api.post("/v2/email-service/webhook", json={"url": dead, "actions": ["new_emails"]})
    receiver.status = 500
    await api.post(
        "/v2/email-service/webhook", json={"url": receiver.url, "actions": ["new_emails"]}
    )
    api.sb.state.add_subscriber(api.sb.state.add_book("B").id, "a@example.com")
    deliveries = await api.sb.flush_webhooks()
    assert sorted((d.url == dead, d.status) for d in deliveries) == [(False, 500), (True, 0)]
    assert await api.sb.flush_webhooks() == []
    assert api.sb.state.webhooks.pending() == 0


async def test_control_reads(api: Api) -> None:
    base = f"{api.sb.base_url}/_sandbox"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/settings") as resp:
            assert (await resp.json())["token_ttl"] == 3600
        async with session.post(f"{base}/api_keys", json={"client_id": api.sb.client_id}) as resp:
            key = (await resp.json())["key"]
        assert (await api.get("/addressbooks", token=key))[0] == 200
        async with session.get(f"{base}/counters") as resp:
            assert (await resp.json())[api.sb.client_id] == 2
        async with session.delete(f"{base}/requests") as resp:
            assert resp.status == 200
        assert api.sb.requests() == []
        async with session.get(f"{base}/clock") as resp:
            assert (await resp.json())["now"] > 1.7e9
        async with session.post(f"{base}/clock/advance", json={"seconds": -1}) as resp:
            assert resp.status == 400
        async with session.post(f"{base}/faults", json={"kind": "500", "rate": 1}) as resp:
            assert (await resp.json())["rates"] == {"500": 1.0}
        async with session.delete(f"{base}/faults") as resp:
            assert resp.status == 200
        assert (await api.get("/addressbooks"))[0] == 200
        async with session.get(f"{base}/webhooks/deliveries") as resp:
            assert await resp.json() == []
        async with session.post(f"{base}/clients", json={"client_id": 1}) as resp:
            assert resp.status == 400
