"""Seeding determinism, the large seed, the change generator, and serving from the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import pytest

from connector.sandbox.books import ACTIVE, UNSUBSCRIBED
from connector.sandbox.harness import start_sandbox
from connector.sandbox.seed import apply_seed
from connector.sandbox.server import Options, serve
from connector.sandbox.state import State
from tests.integration.sandbox.conftest import Api

DEMO_READS = [
    ("GET", "/addressbooks", None),
    ("GET", "/addressbooks/1/emails", None),
    ("GET", "/addressbooks/2/emails", {"order": "desc"}),
    ("GET", "/addressbooks/3/variables", None),
    ("GET", "/campaigns", None),
    ("GET", "/campaigns/1", None),
    ("GET", "/senders", None),
    ("GET", "/smtp/emails", None),
    ("POST", "/crm/v1/contacts/get-list", {}),
    ("POST", "/crm/v1/deals/get-list", {}),
    ("GET", "/chatbots/bots", None),
    ("GET", "/chatbots/dialogs", None),
    ("GET", "/push/websites", None),
    ("GET", "/push/websites/1/subscriptions", None),
    ("GET", "/a360/autoresponders/list", None),
]


async def _snapshot(seed: str) -> list[Any]:
    async with start_sandbox(seed=seed, rate_limit=None) as sb, aiohttp.ClientSession() as s:
        api = Api(s, sb)
        await api.login()
        answers = []
        for method, path, params in DEMO_READS:
            if method == "GET":
                status, data = await api.get(path, params=params)
            else:
                status, data = await api.post(path, json=params)
            assert status == 200, (path, data)
            answers.append(data)
        return answers


async def test_demo_seed_is_deterministic() -> None:
    first = await _snapshot("demo")
    second = await _snapshot("demo")
    assert first == second
    books = first[0]
    assert [b["name"] for b in books] == ["Newsletter", "Customers", "Webinar leads"]
    assert [b["all_email_qty"] for b in books] == [40, 25, 12]
    assert 0 < books[0]["active_email_qty"] < 40
    campaigns = first[4]
    assert [c["status"] for c in campaigns] == [3, 3, 3]
    assert first[5]["statistics"]["sent"] > 0
    assert first[8]["data"]["total"] == 6
    assert first[9]["meta"]["total"] == 4


async def test_demo_credentials_are_registered() -> None:
    state = State()
    apply_seed(state, "demo")
    assert state.auth.check("sandbox-client", "sandbox-secret")
    assert "news@example.com" in state.campaigns.senders


def test_bad_seed_names_are_refused() -> None:
    for bad in ("nope", "big:many", "big:-1", "demo:3"):
        with pytest.raises(ValueError):
            apply_seed(State(), bad)


async def test_big_seed_pages_in_order() -> None:
    # How fast seeding and paging are is measured in bench/sandbox_seed.py.
    state = State()
    apply_seed(state, "big:200000")
    book = state.books[1]
    assert len(book) == 200_000
    for offset in range(0, 200_000, 2000):
        rows = book.page(100, offset)
        assert len(rows) == 100
        assert rows[0].email == f"user{offset + 1:07d}@example.com"
        assert rows[-1].email == f"user{offset + 100:07d}@example.com"


async def test_big_seed_over_http() -> None:
    async with start_sandbox(seed="big:5000", rate_limit=None) as sb, aiohttp.ClientSession() as s:
        api = Api(s, sb)
        await api.login()
        assert (await api.get("/addressbooks/1/emails/total"))[1] == {"total": 5000}
        last = await api.get("/addressbooks/1/emails", params={"offset": 4900, "limit": 100})
        assert last[1][-1]["email"] == "user0005000@example.com"
        assert last[1][0]["variables"] == {}


async def test_generator_reports_exactly_what_it_changed() -> None:
    state = State()
    apply_seed(state, "demo")
    before = {
        b.id: {r.email: (r.status, dict(r.variables)) for r in b.iter_rows()}
        for b in state.books.values()
    }
    campaigns_before = len(state.campaigns.items)
    from connector.sandbox.generator import Generator

    changes = Generator(state, seed=7).step(300)
    assert len(changes) == 300
    kinds = {c.kind for c in changes}
    assert kinds == {
        "subscriber_added",
        "subscriber_unsubscribed",
        "variables_changed",
        "subscriber_deleted",
        "campaign_created",
        "deal_moved",
    }
    # Replay the report onto the old snapshot: it must give exactly the new state.
    expected = {book: dict(rows) for book, rows in before.items()}
    for change in changes:
        rows = expected.get(change.book_id or 0)
        if change.kind == "subscriber_added":
            assert rows is not None and change.email is not None
            rows[change.email] = (ACTIVE, dict(change.detail))
        elif change.kind == "subscriber_unsubscribed":
            assert rows is not None and change.email is not None
            rows[change.email] = (UNSUBSCRIBED, rows[change.email][1])
        elif change.kind == "variables_changed":
            assert rows is not None and change.email is not None
            status, variables = rows[change.email]
            rows[change.email] = (status, {**variables, **change.detail})
        elif change.kind == "subscriber_deleted":
            assert rows is not None and change.email is not None
            del rows[change.email]
    after = {
        b.id: {r.email: (r.status, dict(r.variables)) for r in b.iter_rows()}
        for b in state.books.values()
    }
    assert after == expected
    created = sum(1 for c in changes if c.kind == "campaign_created")
    assert len(state.campaigns.items) == campaigns_before + created


async def test_generator_is_reproducible() -> None:
    from connector.sandbox.generator import Generator

    runs = []
    for _ in range(2):
        state = State()
        apply_seed(state, "big:1000")
        changes = Generator(state, seed="same").step(200)
        runs.append([(c.kind, c.email, c.detail) for c in changes])
    assert runs[0] == runs[1]


async def test_generator_over_the_control_api() -> None:
    async with start_sandbox(seed="demo") as sb, aiohttp.ClientSession() as session:
        base = f"{sb.base_url}/_sandbox"
        async with session.post(f"{base}/generator/step", json={"count": 5}) as resp:
            made = await resp.json()
        assert len(made) == 5
        assert {"kind", "at", "book_id", "email", "detail"} == set(made[0])
        async with session.post(f"{base}/generator", json={"rate": 200}) as resp:
            assert (await resp.json())["running"] is True
        deadline = time.monotonic() + 5
        # Bounded polling: the generator runs on wall time in the server's loop.
        while sb.generator.total < 10 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        async with session.post(f"{base}/generator", json={"rate": 0}) as resp:
            assert (await resp.json())["running"] is False
        assert sb.generator.total >= 10
        async with session.get(f"{base}/generator/changes", params={"since": 5}) as resp:
            data = await resp.json()
        assert data["total"] == sb.generator.total
        assert len(data["changes"]) == sb.generator.total - 5


async def test_control_api_settings_faults_clock_and_seed() -> None:
    async with (
        start_sandbox(frozen_clock=True) as sb,
        aiohttp.ClientSession() as session,
    ):
        base = f"{sb.base_url}/_sandbox"
        async with session.put(f"{base}/settings", json={"rate_limit": 2}) as resp:
            assert (await resp.json())["rate_limit"] == 2
        async with session.put(f"{base}/settings", json={"nope": 1}) as resp:
            assert resp.status == 400
        async with session.post(f"{base}/seed", json={"seed": "big:10"}) as resp:
            assert [b["all_email_qty"] for b in (await resp.json())["books"]] == [10]
        async with session.post(f"{base}/seed", json={"seed": "huge"}) as resp:
            assert resp.status == 400
        api = Api(session, sb)
        await api.login()
        async with session.post(f"{base}/faults", json={"kind": "500", "count": 1}) as resp:
            assert (await resp.json())["pending"] == 1
        async with session.post(f"{base}/faults", json={"kind": "boom"}) as resp:
            assert resp.status == 400
        assert (await api.get("/addressbooks"))[0] == 500
        assert (await api.get("/addressbooks"))[0] == 200
        assert (await api.get("/addressbooks"))[0] == 200
        assert (await api.get("/addressbooks"))[0] == 429
        async with session.post(f"{base}/clock/advance", json={"seconds": 5}) as resp:
            assert (await resp.json())["now"] == pytest.approx(sb.clock.now())
        assert (await api.get("/addressbooks"))[0] == 200
        async with session.post(f"{base}/revoke", json={}) as resp:
            assert (await resp.json())["revoked"] == 1
        assert (await api.get("/addressbooks"))[0] == 401
        async with session.get(f"{base}/requests", params={"client_id": sb.client_id}) as resp:
            records = await resp.json()
        assert [r["status"] for r in records][-3:] == [429, 200, 401]
        async with session.post(
            f"{base}/clients", json={"client_id": "c", "client_secret": "s"}
        ) as resp:
            assert resp.status == 200
        await api.login("c", "s")


async def test_serve_runs_the_cli_server_until_cancelled() -> None:
    ready = asyncio.Event()
    options = Options(port=0, seed="demo")
    task = asyncio.create_task(serve(options, ready=ready))
    await asyncio.wait_for(ready.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.done()
