"""The status page and `connector status`'s data: what an operator sees, and Replay."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import pytest

from connector.admin import AdminAccess, build_admin_app
from connector.config import Config
from connector.status import gather
from connector.status_page import StatusSource, status_routes
from connector.web import WebState, serve
from tests.integration.dispatch_support import flow_file, insert_event, webhook_flow

HOOK = "http://127.0.0.1:9/hooks"
ERROR = (
    "FatalError: SendPulse answered 400 on GET /addressbooks/999/emails: "
    "Book not found (error_code 213)\nsecond line of the detail"
)


def config() -> Config:
    return flow_file(
        webhook_flow("healthy", HOOK)
        + webhook_flow("broken", HOOK)
        + webhook_flow("resting", HOOK, enabled=False)
    )


async def seed(conn: asyncpg.Connection, now: datetime) -> dict[str, str]:
    """A healthy flow with a delivered event, a failing flow with a dead delivery."""
    for flow, error in (("healthy", None), ("broken", ERROR)):
        await conn.execute(
            "INSERT INTO flow_states (flow_name, connection_id, trigger_type, state_key,"
            " baseline_done, last_error) VALUES ($1, 'main', 'sendpulse.subscriber_added',"
            " 'k', true, $2)",
            flow,
            error,
        )
    recent, earlier = now - timedelta(seconds=30), now - timedelta(hours=2)
    runs = [
        ("healthy", recent, recent + timedelta(milliseconds=250), 3, 40, 1, None),
        ("broken", earlier, earlier + timedelta(milliseconds=90), 1, 0, 0, None),
        ("broken", recent, recent + timedelta(milliseconds=120), 1, 0, 0, ERROR),
    ]
    await conn.executemany(
        "INSERT INTO poll_runs (flow_name, connection_id, worker, started_at, finished_at,"
        " requests, items_seen, events_created, error)"
        " VALUES ($1, 'main', 'w1', $2, $3, $4, $5, $6, $7)",
        runs,
    )
    [ok] = await insert_event(conn, "healthy", "ev-ok", {"email": "ok@x.org"}, at=now)
    await conn.execute("UPDATE deliveries SET state = 'delivered' WHERE id = $1", ok)
    [dead] = await insert_event(conn, "broken", "ev-dead", {"email": "<b>dead</b>@x.org"}, at=now)
    await conn.execute(
        "UPDATE deliveries SET state = 'dead', attempt = 8,"
        " last_error = 'receiver answered 503' WHERE id = $1",
        dead,
    )
    return {"ok": str(ok), "dead": str(dead)}


async def test_gather_tells_each_flow_state_and_counts(db_pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    async with db_pool.acquire() as conn:
        ids = await seed(conn, now)
        status = await gather(conn, config().flows, now=now)
    flows = {f.name: f for f in status.flows}
    assert [f.name for f in status.flows] == ["healthy", "broken", "resting"]
    assert flows["healthy"].state == "ok"
    assert flows["broken"].state == "failing"
    assert flows["resting"].state == "paused"
    assert flows["broken"].error == ERROR
    assert flows["healthy"].last_poll_requests == 3
    assert flows["healthy"].last_poll_ms == 250
    assert flows["healthy"].events_24h == 1
    assert flows["healthy"].deliveries_24h == {"delivered": 1}
    assert flows["broken"].deliveries_24h == {"dead": 1}
    assert flows["broken"].dead == 1
    # The cursor moved at the last successful poll, two hours ago, not at the failed one.
    assert flows["broken"].cursor_age_s is not None
    assert 7190 < flows["broken"].cursor_age_s < 7210
    assert flows["resting"].last_poll_at is None and flows["resting"].cursor_age_s is None
    assert [d.id for d in status.dead] == [ids["dead"]]
    assert not status.healthy
    assert status.as_json()["healthy"] is False


async def test_needs_reauth_wins_over_failing(db_pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    async with db_pool.acquire() as conn:
        await seed(conn, now)
        await conn.execute(
            "INSERT INTO connections (id, provider, status, status_reason)"
            " VALUES ('main', 'sendpulse', 'needs_reauth', 'invalid_client')"
        )
        status = await gather(conn, config().flows, now=now)
    states = {f.name: f.state for f in status.flows}
    assert states == {"healthy": "needs_reauth", "broken": "needs_reauth", "resting": "paused"}
    assert not status.healthy


@pytest.fixture
async def page(db_pool: asyncpg.Pool) -> AsyncIterator[str]:
    flows = config().flows
    source = StatusSource(
        pool=db_pool,
        flows=lambda: list(flows),
        next_poll=lambda name: datetime.now(UTC) + timedelta(seconds=42),
    )
    app = build_admin_app(
        WebState(pool=db_pool, scheduler_running=lambda: True),
        AdminAccess(),
        status_routes(source),
    )
    runner = await serve(app, "127.0.0.1", 0, listener="admin")
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def fetch(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        return await resp.text()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match is not None, html
    return match.group(1)


async def test_the_page_shows_states_errors_and_dead_deliveries(
    db_pool: asyncpg.Pool, page: str
) -> None:
    async with db_pool.acquire() as conn:
        ids = await seed(conn, datetime.now(UTC))
    async with aiohttp.ClientSession() as session:
        html = await fetch(session, f"{page}/status")
        async with session.get(page, allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/status"
    assert 'id="flow-broken" data-state="failing"' in html
    assert 'id="flow-healthy" data-state="ok"' in html
    assert 'id="flow-resting" data-state="paused"' in html
    # The whole error, escaped, never cut.
    assert "Book not found (error_code 213)\nsecond line of the detail" in html
    assert f'id="dead-{ids["dead"]}"' in html
    assert "&lt;b&gt;dead&lt;/b&gt;@x.org" in html and "<b>dead</b>" not in html
    assert "in 4" in html  # next poll, from the scheduler
    assert "some flows need attention" in html
    # The connection's secret and the webhook secret never reach the page.
    assert "secret-value" not in html
    assert "whsec_" not in html


async def test_replay_needs_the_csrf_token_and_sends_once(db_pool: asyncpg.Pool, page: str) -> None:
    async with db_pool.acquire() as conn:
        ids = await seed(conn, datetime.now(UTC))
    dead = ids["dead"]
    async with aiohttp.ClientSession() as session:
        token = csrf_of(await fetch(session, f"{page}/status"))
        replay = f"{page}/status/replay"
        for form, status in (
            ({"delivery": dead}, 403),
            ({"delivery": dead, "csrf": "0" * 64}, 403),
            ({"delivery": "not-an-id", "csrf": token}, 400),
        ):
            async with session.post(replay, data=form, allow_redirects=False) as resp:
                assert resp.status == status, form
        async with session.post(
            replay,
            data={"delivery": dead, "csrf": token},
            headers={"Origin": "http://evil.example"},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 403
        async with db_pool.acquire() as conn:
            assert (
                await conn.fetchval("SELECT state FROM deliveries WHERE id = $1::uuid", dead)
                == "dead"
            )

        async with session.post(
            replay, data={"delivery": dead, "csrf": token}, allow_redirects=False
        ) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == f"/status?replayed={dead}"
        async with db_pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT state, attempt FROM deliveries WHERE id = $1::uuid", dead
            )
        assert (row["state"], row["attempt"]) == ("pending", 8)

        # A second press (a double click, a reload) finds it no longer dead: nothing moves.
        async with session.post(replay, data={"delivery": dead, "csrf": token}) as resp:
            assert resp.status == 200
            html = await resp.text()
        assert f"Delivery {dead} is already waiting to be sent." in html
        async with db_pool.acquire() as conn:
            count = await conn.fetchval("SELECT count(*) FROM deliveries")
            row = await conn.fetchrow(
                "SELECT state, attempt, id::text FROM deliveries WHERE id = $1::uuid", dead
            )
        assert count == 2
        assert (row["state"], row["attempt"], row["id"]) == ("pending", 8, dead)

        # A delivered one is never sent again from the page either.
        async with session.post(replay, data={"delivery": ids["ok"], "csrf": token}) as resp:
            html = await resp.text()
        assert "was already delivered; it is not sent again" in html
        async with session.post(
            replay, data={"delivery": "00000000-0000-0000-0000-000000000000", "csrf": token}
        ) as resp:
            assert "does not exist" in await resp.text()


async def test_notices_only_echo_ids(page: str) -> None:
    async with aiohttp.ClientSession() as session:
        html = await fetch(session, f"{page}/status?replayed=<script>alert(1)</script>")
        assert 'id="notice"' not in html and "<script>alert" not in html
        html = await fetch(
            session,
            f"{page}/status?not_replayed=00000000-0000-0000-0000-000000000001&reason=<x>",
        )
        assert "00000000-0000-0000-0000-000000000001 does not exist" in html
