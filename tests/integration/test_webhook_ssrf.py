"""The SSRF matrix: webhooks to non-public addresses never reach a local canary."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography.fernet import Fernet

from connector.catalog import CATALOG
from connector.config import load_file
from connector.dispatch import Dispatcher
from connector.egress import EgressPolicy, GuardedResolver, guarded_session, refused_by_egress
from tests.integration.dispatch_support import (
    FakeClock,
    delivery,
    flow_file,
    insert_event,
    webhook_flow,
)


class Canary:
    """A server on loopback (IPv4 and, where possible, IPv6) counting what reaches it."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.port = 0


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    state = Canary()

    async def handle(request: web.Request) -> web.Response:
        state.hits.append(f"{request.host}{request.path}")
        return web.Response(text="canary")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    if socket.has_ipv6:
        try:
            await web.TCPSite(runner, "::1", state.port).start()
        except OSError:
            pass
    try:
        yield state
    finally:
        await runner.cleanup()


def targets(port: int) -> dict[str, str]:
    return {
        "loopback": f"http://127.0.0.1:{port}/",
        "loopback6": f"http://[::1]:{port}/",
        "name": f"http://localhost:{port}/",
        "ten": f"http://10.0.0.1:{port}/",
        "one72": f"http://172.16.0.1:{port}/",
        "one92": f"http://192.168.0.1:{port}/",
        "metadata": "http://169.254.169.254/latest/meta-data/",
        "cgnat": f"http://100.64.0.1:{port}/",
        "zero": f"http://0.0.0.0:{port}/",
        "mapped": f"http://[::ffff:127.0.0.1]:{port}/",
        "decimal": f"http://2130706433:{port}/",
        "octal": f"http://0177.0.0.1:{port}/",
        "hex": f"http://0x7f000001:{port}/",
        "short": f"http://127.1:{port}/",
    }


async def deliver_all(
    pool: asyncpg.Pool, urls: dict[str, str], allow: list[str]
) -> dict[str, asyncpg.Record]:
    config = flow_file("".join(webhook_flow(name, url) for name, url in urls.items()), allow=allow)
    async with pool.acquire() as conn:
        ids = {
            name: (await insert_event(conn, name, f"ev-{name}", {"email": "x@y.z"}))[0]
            for name in urls
        }
    async with guarded_session(EgressPolicy(allow)) as http:
        worker = Dispatcher(pool, config, http=http, clock=FakeClock(), worker_id="ssrf")
        assert await worker.run_once() == len(urls)
    async with pool.acquire() as conn:
        return {name: await delivery(conn, did) for name, did in ids.items()}


async def test_nothing_reaches_the_canary_without_an_allow_list(
    db_pool: asyncpg.Pool, canary: Canary
) -> None:
    rows = await deliver_all(db_pool, targets(canary.port), allow=[])
    assert canary.hits == []
    for name, row in rows.items():
        # Refused before any connection: fatal at once, no retries that could race DNS.
        assert row["state"] == "dead", name
        assert row["attempt"] == 1
        assert (
            "refused to connect" in row["last_error"] or "not a canonical" in row["last_error"]
        ), (name, row["last_error"])


async def test_a_redirect_inward_is_not_followed(db_pool: asyncpg.Pool, canary: Canary) -> None:
    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{canary.port}/inside")

    app = web.Application()
    app.router.add_post("/", redirect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    # 127.0.0.2 is allow-listed as "the public receiver"; it points inward.
    await web.TCPSite(runner, "127.0.0.2", 0).start()
    port = runner.addresses[0][1]
    try:
        rows = await deliver_all(
            db_pool, {"redirect": f"http://127.0.0.2:{port}/"}, allow=["127.0.0.2/32"]
        )
    finally:
        await runner.cleanup()
    assert canary.hits == []
    row = rows["redirect"]
    assert row["state"] == "pending" and "redirects are not followed" in row["last_error"]


async def test_allow_list_opens_exactly_its_network(db_pool: asyncpg.Pool, canary: Canary) -> None:
    urls = targets(canary.port)
    rows = await deliver_all(db_pool, urls, allow=["127.0.0.1/32"])
    delivered = sorted(name for name, row in rows.items() if row["state"] == "delivered")
    # 127.0.0.1 in each of its spellings (URLs are normalised when the flow file loads,
    # so 2130706433, 0177.0.0.1, 0x7f000001 and 127.1 all become 127.0.0.1); not ::1,
    # not 0.0.0.0, not the private ranges.
    assert delivered == ["decimal", "hex", "loopback", "mapped", "name", "octal", "short"]
    assert len(canary.hits) == 7
    assert rows["loopback6"]["state"] == "dead" and rows["zero"]["state"] == "dead"


class ScriptedResolver(AbstractResolver):
    """DNS that answers what the test says: a public address first, then the canary's."""

    def __init__(self, answers: list[list[str]]) -> None:
        self.answers = answers
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in answer
        ]

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(
    "answers",
    [
        [["127.0.0.1"]],
        [["93.184.215.14", "127.0.0.1"]],  # one bad address spoils the name
        [["10.9.9.9"], ["127.0.0.1"]],  # rebinding between lookups: each is checked
    ],
)
async def test_dns_answers_are_checked_on_every_connect(
    canary: Canary, answers: list[list[str]]
) -> None:
    policy = EgressPolicy()
    resolver = ScriptedResolver(answers)
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(policy, inner=resolver), use_dns_cache=False
    )
    async with aiohttp.ClientSession(connector=connector) as http:
        for _ in range(2):
            with pytest.raises(aiohttp.ClientConnectorError) as caught:
                await http.post(f"http://rebind.test:{canary.port}/", allow_redirects=False)
            assert refused_by_egress(caught.value) is not None
    assert resolver.calls == 2
    assert canary.hits == []


async def test_a_reload_applies_a_new_allow_list_at_once(
    db_pool: asyncpg.Pool, canary: Canary, tmp_path: Path
) -> None:
    from connector.daemon import Runtime, Worker

    flows = webhook_flow("hooks", f"http://127.0.0.1:{canary.port}/hook")
    path = tmp_path / "flows.yaml"

    def write(allow: list[str]) -> None:
        networks = "".join(f"\n    - {n}" for n in allow) or " []"
        text = (
            "connections:\n  main: {client_id: id, client_secret: secret-value}\n"
            f"egress:\n  allow_networks:{networks}\nflows:\n"
            + "".join(f"  {line}\n" for line in flows.splitlines())
        )
        path.write_text(text)

    write([])
    async with aiohttp.ClientSession() as plain:
        rt = Runtime(
            pool=db_pool,
            session=plain,
            secret_key=Fernet.generate_key(),
            home=tmp_path,
            worker_id="reload-test",
        )
        worker = Worker(rt, load_file(str(path), CATALOG), config_path=str(path), port=None)
        async with guarded_session(worker.egress) as http:
            dispatcher = Dispatcher(db_pool, worker.config, http=http, clock=FakeClock())
            async with db_pool.acquire() as conn:
                [first] = await insert_event(conn, "hooks", "ev-1", {"email": "a@y.z"})
            await dispatcher.run_once()
            async with db_pool.acquire() as conn:
                assert (await delivery(conn, first))["state"] == "dead"
            assert canary.hits == []

            write(["127.0.0.1/32"])
            assert await worker.reload()
            async with db_pool.acquire() as conn:
                [second] = await insert_event(conn, "hooks", "ev-2", {"email": "b@y.z"})
            await dispatcher.run_once()
            async with db_pool.acquire() as conn:
                assert (await delivery(conn, second))["state"] == "delivered"
            assert canary.hits == [f"127.0.0.1:{canary.port}/hook"]
