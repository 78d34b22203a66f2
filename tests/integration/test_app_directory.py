"""App Directory Login and Uninstall URLs against the sandbox's market endpoints."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from cryptography.fernet import Fernet
from structlog.testing import capture_logs

from connector.auth.app_directory import AppDirectory, app_directory_routes
from connector.auth.crypto import Cipher
from connector.catalog import CATALOG
from connector.config import parse
from connector.providers.fakes import install_row_counts, seed_install_rows
from connector.providers.provider_clients import ProviderClients
from connector.sandbox.harness import Sandbox, start_sandbox
from connector.sandbox.routes_auth import install_json

APP_ID = "42"
APP_SECRET = "app-directory-secret"
USER = 777


@dataclass
class Env:
    sb: Sandbox
    base: str
    http: aiohttp.ClientSession
    pool: asyncpg.Pool
    key: bytes
    config_text: str

    def code(self, user: int = USER) -> str:
        return self.sb.state.auth.mint_code(APP_ID, user, self.sb.state.now())

    def calls(self, path: str) -> list[int]:
        return [r.status for r in self.sb.requests() if r.path == path]


def flow_file(base_url: str, secret: str = APP_SECRET) -> str:
    return f"""
apps:
  store:
    app_id: "{APP_ID}"
    secret: {secret}
    base_url: {base_url}
    scopes: [emails, smtp]
"""


async def _env(db_pool: asyncpg.Pool, secret: str = APP_SECRET) -> AsyncIterator[Env]:
    async with start_sandbox(rate_limit=10.0) as sb, aiohttp.ClientSession() as http:
        sb.state.auth.add_app(APP_ID, APP_SECRET)
        text = flow_file(sb.base_url, secret)
        config = parse(text, CATALOG, "apps.yaml")
        key = Fernet.generate_key()
        app = web.Application()
        app.add_routes(
            app_directory_routes(apps=config.apps, session=http, pool=db_pool, cipher=Cipher(key))
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield Env(sb, f"http://127.0.0.1:{port}", http, db_pool, key, text)
        finally:
            await runner.cleanup()


@pytest.fixture
async def env(db_pool: asyncpg.Pool) -> AsyncIterator[Env]:
    async for made in _env(db_pool):
        yield made


async def login(env: Env, code: str, *, method: str = "GET") -> tuple[int, str]:
    url = f"{env.base}/apps/store/login"
    if method == "GET":
        request = env.http.get(url, params={"code": code, "lang": "en"})
    else:
        request = env.http.post(url, data={"code": code, "lang": "en"})
    async with request as response:
        return response.status, await response.text()


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_login_stores_the_install_as_a_connection(env: Env, method: str) -> None:
    with capture_logs() as logs:
        status, text = await login(env, env.code(), method=method)
    assert status == 200, text
    assert "store-777" in text
    row = await env.pool.fetchrow("SELECT * FROM connections")
    install = next(iter(env.sb.state.auth.installs.values()))
    assert (row["id"], row["provider"], row["source"], row["status"]) == (
        "store-777",
        "sendpulse",
        "app_install",
        "active",
    )
    assert row["install_id"] == f"sendpulse:{APP_ID}:{install.id}"
    assert row["account_id"] == "777" and row["scopes"] == ["emails", "smtp"]
    assert install.client_secret.encode() not in bytes(row["credentials"])
    stored = json.loads(Cipher(env.key).decrypt(row["credentials"]))
    assert stored == {"client_id": install.client_id, "client_secret": install.client_secret}
    assert env.calls("/market-service/oauth/authorize") == [200]
    assert env.calls("/oauth/access_token/market") == [200]
    assert await env.pool.fetchval("SELECT count(*) FROM tokens") == 1
    text_logs = repr(logs)
    for secret in (install.client_secret, APP_SECRET):
        assert secret not in text_logs


async def test_installed_connection_is_usable_and_refreshes_via_the_market_call(
    env: Env,
) -> None:
    assert (await login(env, env.code()))[0] == 200
    providers = ProviderClients(
        session=env.http,
        pool=env.pool,
        config=parse(env.config_text, CATALOG, "apps.yaml"),
        secret_key=env.key,
    )
    assert await providers.installs("store") == ["store-777"]
    assert await providers.installs("other") == []
    client = providers.sendpulse("store-777")
    assert await client.request("GET", "/addressbooks") == []
    assert env.calls("/oauth/access_token/market") == [200]  # the stored token was reused
    env.sb.revoke_tokens()
    assert await client.request("GET", "/addressbooks") == []
    assert env.calls("/oauth/access_token/market") == [200, 200]


@pytest.mark.parametrize("case", ["reused", "expired", "forged"])
async def test_bad_codes_are_refused_without_a_token_call(env: Env, case: str) -> None:
    code = env.code()
    if case == "reused":
        assert (await login(env, code))[0] == 200
    elif case == "expired":
        env.sb.clock.advance(61)
    else:
        code = "f" * 32
    markets_before = len(env.calls("/oauth/access_token/market"))
    status, text = await login(env, code)
    assert status == 400
    assert "invalid, expired or already used" in text
    assert len(env.calls("/oauth/access_token/market")) == markets_before


@pytest.mark.parametrize("code", ["", "x" * 600])
async def test_missing_or_absurd_codes_never_reach_sendpulse(env: Env, code: str) -> None:
    status, _ = await login(env, code)
    assert status == 400
    assert env.sb.requests() == []


async def test_a_wrong_app_secret_is_reported(db_pool: asyncpg.Pool) -> None:
    async for env in _env(db_pool, secret="not-the-app-secret"):
        with capture_logs() as logs:
            status, text = await login(env, env.code())
        assert status == 400
        assert "refused this app" in text
        assert "app_directory_app_refused" in [e["event"] for e in logs]
        assert await env.pool.fetchval("SELECT count(*) FROM connections") == 0


async def uninstall(env: Env, payload: object) -> int:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    headers = {"Content-Type": "application/json"}
    async with env.http.post(f"{env.base}/apps/store/uninstall", data=data, headers=headers) as r:
        return r.status


async def test_uninstall_purges_everything_tied_to_the_install(env: Env) -> None:
    assert (await login(env, env.code()))[0] == 200
    await seed_install_rows(env.pool, "store-777", "per-install")
    install = next(iter(env.sb.state.auth.installs.values()))
    payload = install_json(install)

    forged = {**payload, "client_secret": "guessed"}
    assert await uninstall(env, forged) == 401
    counts = await install_row_counts(env.pool, "store-777", "per-install")
    assert set(counts.values()) == {1}, counts

    assert await uninstall(env, payload) == 200
    counts = await install_row_counts(env.pool, "store-777", "per-install")
    # The connection row and the poll history go too, not only the tokens and events.
    assert set(counts.values()) == {0}, counts
    assert await env.pool.fetchval("SELECT count(*) FROM connections") == 0

    # A repeat is indistinguishable from keys we never issued: the keys went with the install.
    assert await uninstall(env, payload) == 401


async def uninstall_answer(env: Env, payload: object) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    url = f"{env.base}/apps/store/uninstall"
    async with env.http.post(url, data=json.dumps(payload), headers=headers) as r:
        return r.status, await r.text()


async def test_unknown_and_known_install_ids_get_the_same_refusal(env: Env) -> None:
    assert (await login(env, env.code()))[0] == 200
    install = next(iter(env.sb.state.auth.installs.values()))
    wrong = {"client_id": "a", "client_secret": "b"}
    known = await uninstall_answer(env, {**install_json(install), **wrong})
    unknown = await uninstall_answer(env, {"id": "never-installed", **wrong})
    assert known == unknown
    assert known[0] == 401
    assert await env.pool.fetchval("SELECT status FROM connections") == "active"


@pytest.mark.parametrize("stored", ["null", "undecryptable"])
async def test_uninstall_fails_closed_when_the_stored_keys_are_unusable(
    env: Env, stored: str
) -> None:
    assert (await login(env, env.code()))[0] == 200
    value = None if stored == "null" else b"not a fernet token"
    await env.pool.execute("UPDATE connections SET credentials = $1", value)
    install = next(iter(env.sb.state.auth.installs.values()))
    empty = {**install_json(install), "client_id": "", "client_secret": ""}
    assert await uninstall(env, empty) == 401
    assert await uninstall(env, {**install_json(install), "client_id": None}) == 401
    counts = await install_row_counts(env.pool, "store-777", "none")
    assert counts["tokens"] == 1 and counts["connection"] == 1


@pytest.mark.parametrize("field", ["client_id", "client_secret"])
async def test_non_ascii_uninstall_keys_are_refused_not_a_crash(env: Env, field: str) -> None:
    assert (await login(env, env.code()))[0] == 200
    install = next(iter(env.sb.state.auth.installs.values()))
    for value in ("clé-secrète", "\ud800", "😀" * 40):
        assert await uninstall(env, {**install_json(install), field: value}) == 401
    assert await env.pool.fetchval("SELECT status FROM connections") == "active"


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"id": "never-installed", "client_id": "a", "client_secret": "b"}, 401),
        ({"client_id": "a"}, 401),
        ({"id": "x", "app_id": "99", "client_id": "a", "client_secret": "b"}, 401),
        ("[1, 2]", 401),
        ("not json", 400),
        ("[" * 100_000 + "]" * 100_000, 400),
    ],
    ids=["unknown-id", "no-id", "other-app", "not-an-object", "not-json", "deep"],
)
async def test_hostile_uninstall_payloads(env: Env, payload: object, status: int) -> None:
    assert (await login(env, env.code()))[0] == 200
    assert await uninstall(env, payload) == status
    assert await env.pool.fetchval("SELECT status FROM connections") == "active"


async def test_logins_beyond_the_queue_are_shed_without_a_call(db_pool: asyncpg.Pool) -> None:
    async with start_sandbox(rate_limit=None) as sb, aiohttp.ClientSession() as http:
        sb.state.auth.add_app(APP_ID, APP_SECRET)
        config = parse(flow_file(sb.base_url) + "    timeout: 5s\n", CATALOG, "apps.yaml")
        directory = AppDirectory(
            name="store",
            app=config.apps["store"],
            session=http,
            pool=db_pool,
            cipher=Cipher(Fernet.generate_key()),
            login_queue=2,
        )
        app = web.Application()
        app.add_routes(directory.routes())
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}/apps/store/login"
        sb.faults.script("hang", 2, path_prefix="/market-service", hang_seconds=3600)

        async def get(code: str) -> int:
            async with http.get(base, params={"code": code}) as response:
                return response.status

        hanging = [asyncio.create_task(get(f"code-{n}")) for n in range(2)]
        try:
            # The handlers' own count is the thing to wait for; no event marks it.
            while directory.logins_pending < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            with capture_logs() as logs:
                assert await get("one-too-many") == 503
            assert "app_login_shed" in [e["event"] for e in logs]
            exchanges = [r for r in sb.requests() if r.path.startswith("/market-service")]
            assert len(exchanges) <= 2
        finally:
            for task in hanging:
                task.cancel()
            await asyncio.gather(*hanging, return_exceptions=True)
            await runner.cleanup()
