"""Rate limiting on the sandbox clock, and scripted faults."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from connector.sandbox.harness import start_sandbox
from tests.integration.sandbox.conftest import Api

RATE_BODY_CODE = 2020202020


async def test_rate_limit_allows_exactly_the_configured_count_per_second() -> None:
    async with (
        start_sandbox(rate_limit=10, frozen_clock=True) as sb,
        aiohttp.ClientSession() as session,
    ):
        api = Api(session, sb)
        await api.login()
        statuses = [(await api.get("/addressbooks"))[0] for _ in range(15)]
        assert statuses == [200] * 10 + [429] * 5
        status, body = await api.get("/addressbooks")
        assert status == 429
        assert body["error_code"] == RATE_BODY_CODE
        sb.clock.advance(0.5)
        assert (await api.get("/addressbooks"))[0] == 429
        sb.clock.advance(0.6)
        statuses = [(await api.get("/addressbooks"))[0] for _ in range(12)]
        assert statuses == [200] * 10 + [429] * 2


async def test_no_one_second_window_holds_more_2xx_than_the_limit() -> None:
    async with (
        start_sandbox(rate_limit=5, frozen_clock=True) as sb,
        aiohttp.ClientSession() as session,
    ):
        api = Api(session, sb)
        await api.login()
        for _ in range(40):
            await api.get("/addressbooks")
            sb.clock.advance(0.07)
        records = sb.requests(sb.client_id)
        ok = sorted(r.at for r in records if r.status == 200 and r.method == "GET")
        assert len(ok) > 5
        for i, start in enumerate(ok):
            assert sum(1 for t in ok[i:] if t < start + 1.0) <= 5
        assert any(r.status == 429 for r in sb.requests(sb.client_id))


async def test_rate_limit_is_per_client() -> None:
    async with (
        start_sandbox(rate_limit=2, frozen_clock=True) as sb,
        aiohttp.ClientSession() as session,
    ):
        first, second = Api(session, sb), Api(session, sb)
        await first.login()
        sb.add_client("b", "b")
        await second.login("b", "b")
        assert [(await first.get("/addressbooks"))[0] for _ in range(3)] == [200, 200, 429]
        assert [(await second.get("/addressbooks"))[0] for _ in range(3)] == [200, 200, 429]


async def test_per_minute_quota() -> None:
    async with (
        start_sandbox(rate_limit=None, per_minute=3, frozen_clock=True) as sb,
        aiohttp.ClientSession() as session,
    ):
        api = Api(session, sb)
        await api.login()
        assert [(await api.get("/addressbooks"))[0] for _ in range(4)] == [200, 200, 200, 429]
        sb.clock.advance(61)
        assert (await api.get("/addressbooks"))[0] == 200


async def test_rate_limit_can_change_while_running() -> None:
    async with (
        start_sandbox(rate_limit=1, frozen_clock=True) as sb,
        aiohttp.ClientSession() as session,
    ):
        api = Api(session, sb)
        await api.login()
        assert [(await api.get("/addressbooks"))[0] for _ in range(2)] == [200, 429]
        sb.configure(rate_limit=None)
        assert [(await api.get("/addressbooks"))[0] for _ in range(20)] == [200] * 20


async def test_scripted_500_then_normal(api: Api) -> None:
    api.sb.faults.script("500", 2)
    assert (await api.get("/addressbooks"))[0] == 500
    assert (await api.get("/addressbooks"))[0] == 500
    assert (await api.get("/addressbooks"))[0] == 200


async def test_scripted_fault_matches_path_prefix(api: Api) -> None:
    api.sb.state.add_book("one")
    api.sb.faults.script("429", 1, path_prefix="/addressbooks/1", retry_after=7)
    assert (await api.get("/addressbooks"))[0] == 200
    async with api.session.get(
        f"{api.sb.base_url}/addressbooks/1", headers={"Authorization": f"Bearer {api.token}"}
    ) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "7"
        assert (await resp.json())["error_code"] == RATE_BODY_CODE
    assert (await api.get("/addressbooks/1"))[0] == 200


async def test_malformed_json_fault(api: Api) -> None:
    api.sb.faults.script("malformed")
    async with api.session.get(
        f"{api.sb.base_url}/addressbooks", headers={"Authorization": f"Bearer {api.token}"}
    ) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        with pytest.raises(ValueError):
            await resp.json()


async def test_drop_fault_closes_the_connection(api: Api) -> None:
    api.sb.faults.script("drop")
    # A POST: aiohttp's client silently retries an idempotent GET once after a disconnect.
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.post("/addressbooks", json={"bookName": "x"})
    assert (await api.get("/addressbooks"))[0] == 200
    assert api.sb.requests()[-2].status == 0
    assert api.sb.state.book_by_name("x") is None


async def test_hang_fault_outlasts_the_client_timeout(api: Api) -> None:
    api.sb.faults.script("hang", hang_seconds=30)
    timeout = aiohttp.ClientTimeout(total=0.3)
    with pytest.raises(asyncio.TimeoutError):
        await api.get("/addressbooks", timeout=timeout)
    assert (await api.get("/addressbooks"))[0] == 200


async def test_fault_rate_is_a_probability(api: Api) -> None:
    api.sb.faults.set_rate("500", 1.0)
    assert (await api.get("/addressbooks"))[0] == 500
    api.sb.faults.set_rate("500", 0)
    assert (await api.get("/addressbooks"))[0] == 200
    with pytest.raises(ValueError):
        api.sb.faults.set_rate("500", 1.5)
    with pytest.raises(ValueError):
        api.sb.faults.script("teapot")


async def test_added_latency_delays_every_answer() -> None:
    async with (
        start_sandbox(latency=0.05, jitter=0.01) as sb,
        aiohttp.ClientSession() as session,
    ):
        api = Api(session, sb)
        started = time.perf_counter()
        await api.login()
        await api.get("/addressbooks")
        # A lower bound only: the sandbox must wait at least the fixed latency per call.
        assert time.perf_counter() - started >= 0.1


async def test_form_bodies_work_on_api_calls(api: Api) -> None:
    status, data = await api.post("/addressbooks", data={"bookName": "From a form"})
    assert status == 200
    assert api.sb.state.books[data["id"]].name == "From a form"
