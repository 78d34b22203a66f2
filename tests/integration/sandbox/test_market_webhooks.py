"""App Directory installs and tokens, uninstall calls, and batched outgoing webhooks."""

from __future__ import annotations

import aiohttp

from tests.integration.sandbox.conftest import Api, Receiver


async def _authorize(api: Api, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    async with api.session.post(
        f"{api.sb.base_url}/market-service/oauth/authorize", json=body
    ) as resp:
        return resp.status, await resp.json()


async def _market_token(api: Api, client_id: str, secret: str) -> tuple[int, dict[str, object]]:
    body = {"client_id": client_id, "client_secret": secret, "grant_type": "client_credentials"}
    async with api.session.post(f"{api.sb.base_url}/oauth/access_token/market", json=body) as resp:
        return resp.status, await resp.json()


async def test_code_exchange_and_market_token(api: Api) -> None:
    code = api.sb.mint_code("app-1", "app-secret", user_id=42)
    status, data = await _authorize(api, {"app_id": "app-1", "secret": "app-secret", "code": code})
    assert status == 200
    assert data["result"] is True
    install = data["data"]
    assert isinstance(install, dict)
    assert {"id", "user_id", "app_id", "client_id", "client_secret"} <= set(install)
    assert install["user_id"] == 42
    # Single use.
    status, again = await _authorize(api, {"app_id": "app-1", "secret": "app-secret", "code": code})
    assert (status, again["error"]) == (400, "invalid_grant")
    status, token = await _market_token(api, install["client_id"], install["client_secret"])
    assert status == 200
    assert set(token) == {"token_type", "expires_in", "access_token"}
    assert (await api.get("/addressbooks", token=str(token["access_token"])))[0] == 200
    status, bad = await _market_token(api, install["client_id"], "wrong")
    assert status == 401
    assert bad["error"] == "invalid_client"
    # Install keys are not main-account keys.
    status, _ = await _market_token(api, api.sb.client_id, api.sb.client_secret)
    assert status == 401


async def test_code_expires_after_a_minute_and_needs_the_app_secret(api: Api) -> None:
    code = api.sb.mint_code("app-1", "app-secret")
    status, data = await _authorize(api, {"app_id": "app-1", "secret": "nope", "code": code})
    assert (status, data["error"]) == (401, "invalid_client")
    api.sb.clock.advance(61)
    status, data = await _authorize(api, {"app_id": "app-1", "secret": "app-secret", "code": code})
    assert status == 400


async def test_uninstall_posts_the_documented_json(api: Api, receiver: Receiver) -> None:
    code = api.sb.mint_code("app-1", "app-secret")
    install = (await _authorize(api, {"app_id": "app-1", "secret": "app-secret", "code": code}))[1][
        "data"
    ]
    assert isinstance(install, dict)
    status, token = await _market_token(api, install["client_id"], install["client_secret"])
    assert await api.sb.uninstall(install["client_id"], receiver.url) == 200
    assert len(receiver.bodies) == 1
    sent = receiver.bodies[0]
    assert set(sent) == {
        "id",
        "user_id",
        "app_id",
        "client_id",
        "client_secret",
        "created_at",
        "updated_at",
    }
    assert sent["created_at"].endswith(".000000Z")
    assert (await api.get("/addressbooks", token=str(token["access_token"])))[0] == 401
    status, _ = await _market_token(api, install["client_id"], install["client_secret"])
    assert status == 401


async def test_webhook_registration_api(api: Api, receiver: Receiver) -> None:
    body = {"url": receiver.url, "actions": ["new_emails", "unsubscribe"]}
    status, data = await api.post("/v2/email-service/webhook", json=body)
    assert status == 200
    assert data["success"] is True
    assert [r["action"] for r in data["data"]] == ["new_emails", "unsubscribe"]
    assert set(data["data"][0]) == {"id", "user_id", "url", "action"}
    listed = (await api.get("/v2/email-service/webhook"))[1]["data"]
    assert len(listed) == 2
    first = listed[0]["id"]
    assert (await api.get(f"/v2/email-service/webhook/{first}"))[1]["data"]["id"] == first
    assert (await api.call("DELETE", f"/v2/email-service/webhook/{first}"))[0] == 200
    assert len((await api.get("/v2/email-service/webhook"))[1]["data"]) == 1
    bad = {"url": receiver.url, "actions": ["teleport"]}
    assert (await api.post("/v2/email-service/webhook", json=bad))[0] == 422
    assert (await api.post("/v2/email-service/webhook", json={"actions": ["delete"]}))[0] == 422


async def test_events_are_batched_by_interval(api: Api, receiver: Receiver) -> None:
    api.sb.configure(webhook_interval=30)
    api.token = api.sb.state.auth.add_api_key(api.sb.client_id)
    actions = ["new_emails", "unsubscribe", "delete", "task_status_update"]
    await api.post("/v2/email-service/webhook", json={"url": receiver.url, "actions": actions})
    book = api.sb.state.add_book("Hooked").id
    await api.post(f"/addressbooks/{book}/emails", json={"emails": ["a@example.com", "b@x.io"]})
    await api.post(f"/addressbooks/{book}/emails/unsubscribe", json={"emails": ["a@example.com"]})
    await api.call("DELETE", f"/addressbooks/{book}/emails", json={"emails": ["b@x.io"]})
    silent = {"emails": ["c@example.com"], "disable_webhook": 1}
    await api.post(f"/addressbooks/{book}/emails", json=silent)
    assert receiver.bodies == []
    api.sb.clock.advance(29)
    await api.sb.state.webhooks.drain()
    assert receiver.bodies == []
    api.sb.clock.advance(2)
    await api.sb.state.webhooks.drain()
    assert len(receiver.bodies) == 1
    batch = receiver.bodies[0]
    assert [(e["event"], e["email"]) for e in batch] == [
        ("new_emails", "a@example.com"),
        ("new_emails", "b@x.io"),
        ("unsubscribe", "a@example.com"),
        ("delete", "b@x.io"),
    ]
    assert set(batch[0]) == {"event", "email", "book_id", "variables", "source", "timestamp"}
    assert set(batch[2]) >= {"task_id", "book_id", "from_all", "reason", "categories"}
    assert batch[0]["timestamp"].isdigit()


async def test_a_full_batch_goes_at_once(api: Api, receiver: Receiver) -> None:
    api.sb.configure(webhook_batch=100)
    await api.post(
        "/v2/email-service/webhook", json={"url": receiver.url, "actions": ["new_emails"]}
    )
    book = api.sb.state.add_book("Big").id
    for chunk in range(3):
        emails = [f"u{chunk}-{i}@example.com" for i in range(50)]
        await api.post(f"/addressbooks/{book}/emails", json={"emails": emails})
    await api.sb.state.webhooks.drain()
    assert [len(b) for b in receiver.bodies] == [100]
    deliveries = await api.sb.flush_webhooks()
    assert [len(d.events) for d in deliveries] == [50]
    assert deliveries[0].status == 200
    assert [len(b) for b in receiver.bodies] == [100, 50]


async def test_campaign_status_changes_fire_task_status_update(
    api: Api, receiver: Receiver
) -> None:
    body = {"url": receiver.url, "actions": ["task_status_update"]}
    await api.post("/v2/email-service/webhook", json=body)
    book = api.sb.state.add_book("L")
    api.sb.state.add_subscriber(book.id, "a@example.com")
    campaign = api.sb.state.create_campaign([book.id])
    settings = api.sb.state.settings
    api.sb.clock.advance(settings.campaign_review_seconds + settings.campaign_send_seconds + 1)
    await api.sb.flush_webhooks()
    events = [e for batch in receiver.bodies for e in batch]
    assert [(e["task_id"], e["status"]) for e in events] == [(campaign.id, "sent")]


async def test_control_api_over_http(api: Api, receiver: Receiver) -> None:
    base = f"{api.sb.base_url}/_sandbox"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/apps/code", json={"app_id": "a", "secret": "s"}) as resp:
            code = (await resp.json())["code"]
        status, data = await _authorize(api, {"app_id": "a", "secret": "s", "code": code})
        assert status == 200
        install = data["data"]
        assert isinstance(install, dict)
        body = {"client_id": install["client_id"], "url": receiver.url}
        async with session.post(f"{base}/apps/uninstall", json=body) as resp:
            assert await resp.json() == {"result": True, "receiver_status": 200}
        async with session.post(f"{base}/apps/uninstall", json=body) as resp:
            assert resp.status == 404
        async with session.post(f"{base}/webhooks/flush") as resp:
            assert await resp.json() == {"batches": 0, "events": 0}
