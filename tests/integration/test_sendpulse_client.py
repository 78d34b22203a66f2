"""The SendPulse client against the sandbox: paging, rate limit, retries, error mapping."""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from connector.auth.tokens import StaticKey
from connector.errors import RetriableError
from connector.http_client.api_errors import (
    MalformedResponse,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    UnexpectedResponse,
)
from connector.http_client.api_retry import RetryPolicy
from connector.http_client.transport import make_limiter, send_trace
from connector.providers.fakes import (
    FakeClock,
    RecordingSleep,
    SendLog,
    max_in_window,
    sandbox_config,
)
from connector.providers.provider_clients import ProviderClients
from connector.providers.sendpulse_client import SendPulseClient
from connector.sandbox.harness import Sandbox, start_sandbox
from connector.units import RateLimit


def clients(
    sb: Sandbox,
    http: aiohttp.ClientSession,
    pool: asyncpg.Pool,
    *,
    sleep: RecordingSleep | None = None,
    retry: RetryPolicy | None = None,
    **extra: object,
) -> ProviderClients:
    config = sandbox_config(sb.base_url, sb.client_id, sb.client_secret, extra=extra)
    return ProviderClients(
        session=http,
        pool=pool,
        config=config,
        secret_key=Fernet.generate_key(),
        now=FakeClock().now,
        sleep=sleep or RecordingSleep(),
        retry=retry,
    )


def api_calls(sb: Sandbox, path: str) -> list[int]:
    return [r.status for r in sb.requests() if r.path == path]


async def test_typed_calls_and_offset_paging(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    client = clients(sb, http, db_pool).sendpulse("main")
    list_id = await client.create_mailing_list("Leads")
    emails = [f"user{i}@example.com" for i in range(5)]
    await client.add_subscribers(list_id, [{"email": e, "variables": {"n": 1}} for e in emails])
    books = await client.mailing_lists()
    assert [b.name for b in books] == ["Leads"]
    assert (await client.mailing_list(list_id)).id == list_id  # a one-element array reply
    before = client.requests_made
    rows = [row async for row in client.iter_offset(f"/addressbooks/{list_id}/emails", limit=2)]
    assert sorted(r["email"] for r in rows) == emails
    assert client.requests_made - before == 3  # 2 + 2 + a short page of 1
    assert await client.subscriber_total(list_id) == 5
    one = await client.subscriber(list_id, emails[0])
    assert one.email == emails[0]
    offsets = [r.query for r in sb.requests() if r.path == f"/addressbooks/{list_id}/emails"]
    assert any("offset=4" in query for query in offsets)


async def test_one_client_per_connection_shared_by_callers(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    providers = clients(sb, http, db_pool)
    assert providers.sendpulse("main") is providers.sendpulse("main")


async def test_rate_limit_is_never_exceeded_under_concurrency(
    sb: Sandbox, db_pool: asyncpg.Pool
) -> None:
    sent = SendLog()
    async with aiohttp.ClientSession(trace_configs=[sent.trace()]) as http:
        providers = clients(sb, http, db_pool, rate_limit="8/s")
        await providers.sendpulse("main").request("GET", "/addressbooks")

        async def caller(n: int) -> None:
            # Three "flows" asking for the connection's client independently.
            client = providers.sendpulse("main")
            for _ in range(n):
                await client.request("GET", "/addressbooks")

        await asyncio.gather(caller(9), caller(9), caller(9))
    # Judged by when the client sent each request (token call included), not by when a
    # server in this same event loop got around to reading it.
    assert len(sent.sent) == 29
    assert max_in_window(sent.sent, 1.0) <= 8
    records = sb.requests(sb.client_id)
    assert len([r for r in records if r.status == 200]) == 29  # 28 calls + 1 token call
    assert all(r.status == 200 for r in records)
    assert max_in_window(records, 1.0) <= 8
    assert max_in_window(sb.requests(), 1.0, ok_only=False) <= 8


async def test_500s_are_retried_with_backoff_then_succeed(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    sleep = RecordingSleep()
    client = clients(sb, http, db_pool, sleep=sleep).sendpulse("main")
    await client.request("GET", "/addressbooks")
    sb.faults.script("500", 3, path_prefix="/addressbooks")
    assert await client.request("GET", "/addressbooks") == []
    assert api_calls(sb, "/addressbooks") == [200, 500, 500, 500, 200]
    assert len(sleep.delays) == 3
    # full jitter: each delay lies within its exponential ceiling
    for attempt, delay in enumerate(sleep.delays, start=1):
        assert 0 <= delay <= min(30.0, 0.5 * 2 ** (attempt - 1))


async def test_retry_after_is_honoured(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    sleep = RecordingSleep()
    client = clients(sb, http, db_pool, sleep=sleep).sendpulse("main")
    await client.request("GET", "/addressbooks")
    sb.faults.script("429", 2, path_prefix="/addressbooks", retry_after=7)
    await client.request("GET", "/addressbooks")
    assert len(sleep.delays) == 2
    assert all(delay >= 7 for delay in sleep.delays)


async def test_a_429_storm_gives_up_after_the_bounded_attempts(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    sleep = RecordingSleep()
    client = clients(sb, http, db_pool, sleep=sleep).sendpulse("main")
    await client.request("GET", "/addressbooks")
    sb.faults.script("429", 50, path_prefix="/addressbooks")
    with pytest.raises(RateLimited) as caught:
        await client.request("GET", "/addressbooks")
    assert caught.value.error_code == 2020202020
    assert api_calls(sb, "/addressbooks").count(429) == 5
    assert len(sleep.delays) == 4


async def test_total_time_budget_stops_retries(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    ticks = iter(range(0, 10_000, 50))  # every look at the clock: 50 s later
    policy = RetryPolicy(attempts=10, budget=120.0, monotonic=lambda: float(next(ticks)))
    client = clients(sb, http, db_pool, retry=policy).sendpulse("main")
    await client.request("GET", "/addressbooks")
    sb.faults.script("500", 20, path_prefix="/addressbooks")
    with pytest.raises(ServerError):
        await client.request("GET", "/addressbooks")
    assert 2 <= api_calls(sb, "/addressbooks").count(500) <= 3


@pytest.mark.parametrize("kind", ["malformed", "drop"])
async def test_malformed_bodies_and_dropped_connections_are_retried(
    kind: str, sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    sleep = RecordingSleep()
    client = clients(sb, http, db_pool, sleep=sleep).sendpulse("main")
    await client.request("GET", "/addressbooks")
    sb.faults.script(kind, 2, path_prefix="/addressbooks")
    assert await client.request("GET", "/addressbooks") == []
    failed = 0 if kind == "drop" else 200  # a dropped call is logged with status 0
    assert api_calls(sb, "/addressbooks") == [200, failed, failed, 200]
    # aiohttp itself resends once when a reused keep-alive connection drops, so a drop
    # may cost one of our retries or none.
    assert 1 <= len(sleep.delays) <= 2


@pytest.mark.parametrize(
    ("kind", "error"), [("malformed", MalformedResponse), ("drop", TransportError)]
)
async def test_persistent_faults_end_as_retriable_errors_not_crashes(
    kind: str,
    error: type[RetriableError],
    sb: Sandbox,
    http: aiohttp.ClientSession,
    db_pool: asyncpg.Pool,
) -> None:
    client = clients(sb, http, db_pool).sendpulse("main")
    await client.request("GET", "/addressbooks")
    sb.faults.script(kind, 10, path_prefix="/addressbooks")
    with pytest.raises(error):
        await client.request("GET", "/addressbooks")


async def test_a_hanging_request_times_out_and_is_retried(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    sleep = RecordingSleep()
    client = clients(sb, http, db_pool, sleep=sleep, timeout="1s").sendpulse("main")
    await client.request("GET", "/addressbooks")
    sb.faults.script("hang", 1, path_prefix="/addressbooks", hang_seconds=5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await client.request("GET", "/addressbooks") == []
    assert loop.time() - started < 3
    assert len(sleep.delays) == 1


async def test_a_4xx_fails_at_once_with_its_code_and_meaning(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    sleep = RecordingSleep()
    client = clients(sb, http, db_pool, sleep=sleep).sendpulse("main")
    with pytest.raises(NotFound) as caught:
        await client.mailing_list(999_999)
    assert caught.value.error_code == 213
    assert caught.value.meaning == "mailing list not found"
    assert api_calls(sb, "/addressbooks/999999") == [404]
    assert sleep.delays == []


async def test_at_the_documented_10_per_second_the_sandbox_never_says_429(
    sb: Sandbox, db_pool: asyncpg.Pool
) -> None:
    sleep = RecordingSleep()
    sent = SendLog()
    async with aiohttp.ClientSession(trace_configs=[sent.trace()]) as http:
        providers = clients(sb, http, db_pool, sleep=sleep, rate_limit="10/s")
        client = providers.sendpulse("main")
        await asyncio.gather(*(client.request("GET", "/addressbooks") for _ in range(40)))
    assert len(sent.requests("/addressbooks")) == 40
    assert max_in_window(sent.sent, 1.0) <= 10
    statuses = [r.status for r in sb.requests()]
    assert statuses.count(429) == 0
    assert sleep.delays == []
    assert max_in_window(sb.requests(), 1.0) <= 10


async def test_a_loaded_connection_never_bunches_past_the_limit(db_pool: asyncpg.Pool) -> None:
    # The server's limit equals the connection's. The session has one socket (as all
    # accounts once shared aiohttp's 100), held for a second by a slow answer from another
    # host: the requests the limiter lets through meanwhile queue, then leave together.
    # However they queued, they must not reach the server closer together than the limit.
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    other = f"http://127.0.0.1:{runner.addresses[0][1]}/slow"
    try:
        async with (
            start_sandbox(rate_limit=10.0, latency=0.02) as sandbox,
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1), trace_configs=[send_trace()]
            ) as http,
        ):
            # A token taken beforehand: no token call opens a socket to the sandbox first.
            token = sandbox.state.auth.issue(sandbox.client_id, sandbox.state.now(), 3600)
            client = SendPulseClient(
                connection_id="main",
                session=http,
                base_url=sandbox.base_url,
                limiter=make_limiter(RateLimit(max_rate=10, period=1)),
                auth=StaticKey(
                    connection_id="main", provider="sendpulse", key=token.value, pool=db_pool
                ),
            )

            async def hog() -> None:
                async with http.get(other) as response:
                    await response.read()

            await asyncio.gather(
                hog(), *(client.request("GET", "/addressbooks") for _ in range(30))
            )
            records = sandbox.requests(sandbox.client_id)
    finally:
        await runner.cleanup()
    assert [r.status for r in records] == [200] * 30
    assert max_in_window(records, 1.0, ok_only=False) <= 10


async def test_search_after_and_start_count_paging(
    http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    # Chatbot dialogs and the verifier page differently; a small server shaped like them.
    items = [{"id": str(i)} for i in range(7)]

    async def dialogs(request: web.Request) -> web.Response:
        size = int(request.query["size"])
        after = int(request.query.get("search_after", "-1"))
        page = [item for item in items if int(item["id"]) > after][:size]
        cursor = page[-1]["id"] if page else None
        data = {"list": page, "total": len(items), "size": size, "search_after": cursor}
        return web.json_response({"success": True, "data": data})

    async def check_list(request: web.Request) -> web.Response:
        start, count = int(request.query["start"]), int(request.query["count"])
        return web.json_response({"total": len(items), "list": items[start : start + count]})

    app = web.Application()
    app.router.add_get("/chatbots/dialogs", dialogs)
    app.router.add_get("/verifier-service/check-list", check_list)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        client = SendPulseClient(
            connection_id="paging",
            session=http,
            base_url=base,
            limiter=make_limiter(RateLimit(max_rate=50, period=1)),
            auth=StaticKey(connection_id="paging", provider="sendpulse", key="k", pool=db_pool),
        )
        dialog_ids = [d["id"] async for d in client.iter_search_after("/chatbots/dialogs", size=3)]
        checked = [
            c["id"] async for c in client.iter_start_count("/verifier-service/check-list", count=3)
        ]
    finally:
        await runner.cleanup()
    assert dialog_ids == [str(i) for i in range(7)]
    assert checked == [str(i) for i in range(7)]
    assert client.requests_made == 6  # 3 + 3 + 1 for each


async def test_an_endpoint_ignoring_offset_is_not_paged_forever(
    http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    async def stuck(request: web.Request) -> web.Response:
        return web.json_response([{"id": i} for i in range(int(request.query["limit"]))])

    app = web.Application()
    app.router.add_get("/stuck", stuck)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        client = SendPulseClient(
            connection_id="stuck",
            session=http,
            base_url=f"http://127.0.0.1:{runner.addresses[0][1]}",
            limiter=make_limiter(RateLimit(max_rate=50, period=1)),
            auth=StaticKey(connection_id="stuck", provider="sendpulse", key="k", pool=db_pool),
        )
        with pytest.raises(UnexpectedResponse, match="same page"):
            async for _ in client.iter_offset("/stuck", limit=5):
                pass
    finally:
        await runner.cleanup()
    assert client.requests_made == 2
