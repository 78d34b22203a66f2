"""Sendloop/Mailium app installs against the Mailium-style sandbox and a real Postgres."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from cryptography.fernet import Fernet
from structlog.testing import capture_logs

from connector.auth.crypto import Cipher
from connector.auth.installs import InstallRefused
from connector.auth.mailium_app import COOKIE, STATE_TTL, MailiumApp
from connector.config import App
from connector.errors import NeedsReauth
from connector.providers.fakes import FakeClock, install_row_counts, seed_install_rows
from connector.sandbox.mailium_server import Mailium, start_mailium


@dataclass
class Setup:
    mailium: Mailium
    app: MailiumApp
    base: str
    clock: FakeClock
    cipher: Cipher
    pool: asyncpg.Pool
    http: aiohttp.ClientSession

    def browser(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    def token_calls(self) -> int:
        return len(self.mailium.state.calls("/oauth/token"))


async def _setup(db_pool: asyncpg.Pool, **app_settings: Any) -> AsyncIterator[Setup]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    callback = f"{base}/apps/mailium/callback"
    clock = FakeClock(datetime.now(UTC))
    cipher = Cipher(Fernet.generate_key())
    async with start_mailium(redirect_uri=callback) as mailium, aiohttp.ClientSession() as http:
        config = App.model_validate(
            {
                "provider": "mailium",
                "client_id": mailium.client_id,
                "secret": mailium.client_secret,
                "base_url": mailium.base_url,
                "redirect_uri": callback,
                "scopes": ["list.read", "subscriber.read"],
                **app_settings,
            }
        )
        app = MailiumApp(
            name="mailium", app=config, session=http, pool=db_pool, cipher=cipher, now=clock.now
        )
        web_app = web.Application()
        web_app.add_routes(app.routes())
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        try:
            yield Setup(mailium, app, base, clock, cipher, db_pool, http)
        finally:
            await runner.cleanup()


@pytest.fixture
async def env(db_pool: asyncpg.Pool) -> AsyncIterator[Setup]:
    async for setup in _setup(db_pool):
        yield setup


async def consent(env: Setup, browser: aiohttp.ClientSession) -> str:
    """Follow install → provider consent, stopping before our callback; return its URL."""
    async with browser.get(f"{env.base}/apps/mailium/install", allow_redirects=False) as r:
        assert r.status == 302
        authorize = r.headers["Location"]
    assert authorize.startswith(env.mailium.base_url + "/oauth/authorize?")
    assert "code_challenge=" in authorize and "code_challenge_method=S256" in authorize
    async with browser.get(authorize, allow_redirects=False) as r:
        assert r.status == 302
        return r.headers["Location"]


async def test_install_end_to_end(env: Setup) -> None:
    async with env.browser() as browser:
        async with browser.get(f"{env.base}/apps/mailium/install") as r:
            text = await r.text()
            assert r.status == 200, text
    assert "account 1001 is connected" in text
    row = await env.pool.fetchrow("SELECT * FROM connections")
    assert (row["id"], row["provider"], row["source"], row["status"]) == (
        "mailium-1001",
        "mailium",
        "app_install",
        "active",
    )
    assert row["account_id"] == "1001" and row["install_id"] == "mailium:mailium:1001"
    assert row["scopes"] == ["list.read", "subscriber.read"]
    token = await env.pool.fetchrow("SELECT access_token, refresh_token FROM tokens")
    access = env.cipher.decrypt(token["access_token"])
    assert access in env.mailium.state.access
    assert access.encode() not in bytes(token["access_token"])
    assert env.cipher.decrypt(token["refresh_token"]) in env.mailium.state.refresh
    assert env.token_calls() == 1
    assert await env.pool.fetchval("SELECT count(*) FROM oauth_states") == 0


async def test_state_from_another_browser_is_refused_without_a_token_call(env: Setup) -> None:
    async with env.browser() as victim:
        callback = await consent(env, victim)
    async with env.browser() as attacker, attacker.get(callback) as r:
        assert r.status == 400
        assert "does not belong to this browser" in await r.text()
    assert env.token_calls() == 0


async def test_a_reused_callback_is_refused(env: Setup) -> None:
    async with env.browser() as browser:
        callback = await consent(env, browser)
        state = dict(p.split("=", 1) for p in callback.split("?", 1)[1].split("&"))["state"]
        async with browser.get(callback) as r:
            assert r.status == 200
        browser.cookie_jar.update_cookies({"connector_oauth_state": state})
        async with browser.get(callback) as r:
            assert r.status == 400
            assert "already used" in await r.text()
    assert env.token_calls() == 1


async def test_a_forged_hmac_is_refused(env: Setup) -> None:
    async with env.browser() as browser:
        callback = await consent(env, browser)
        async with browser.get(callback.replace("accid=1001", "accid=1002")) as r:
            assert r.status == 401
    assert env.token_calls() == 0
    assert await env.pool.fetchval("SELECT count(*) FROM connections") == 0


async def test_an_expired_state_is_refused(db_pool: asyncpg.Pool) -> None:
    async for env in _setup(db_pool, signature_window="1h"):
        async with env.browser() as browser:
            callback = await consent(env, browser)
            env.clock.advance(11 * 60)
            async with browser.get(callback) as r:
                assert r.status == 400
                assert "expired" in await r.text()
        assert env.token_calls() == 0


async def test_a_pkce_mismatch_is_refused_by_the_server(env: Setup) -> None:
    async with env.browser() as browser:
        callback = await consent(env, browser)
        await env.pool.execute("UPDATE oauth_states SET code_verifier = 'not-the-verifier'")
        async with browser.get(callback) as r:
            assert r.status == 400
            assert "invalid_grant" in await r.text()
    assert await env.pool.fetchval("SELECT count(*) FROM connections") == 0


async def _installed(env: Setup) -> str:
    async with env.browser() as browser, browser.get(f"{env.base}/apps/mailium/install") as r:
        assert r.status == 200
    return "mailium-1001"


async def test_refresh_rotates_the_refresh_token_and_stores_it(env: Setup) -> None:
    connection = await _installed(env)
    first_refresh = env.cipher.decrypt(await env.pool.fetchval("SELECT refresh_token FROM tokens"))
    env.clock.advance(3600 - 60)
    manager = env.app.token_manager(connection)
    access = await manager.bearer()
    stored = await env.pool.fetchrow("SELECT refresh_token, version FROM tokens")
    second_refresh = env.cipher.decrypt(stored["refresh_token"])
    assert second_refresh != first_refresh
    assert env.mailium.state.refresh[first_refresh].revoked
    assert stored["version"] == 2
    assert await env.app.oauth.account_id(access) == "1001"
    env.clock.advance(3600 - 60)
    await manager.bearer()
    assert env.token_calls() == 3  # the code exchange and two refreshes


async def test_concurrent_refreshes_in_two_managers_use_the_refresh_token_once(
    env: Setup,
) -> None:
    connection = await _installed(env)
    env.clock.advance(3600)
    managers = [env.app.token_manager(connection) for _ in range(2)]
    tokens = await asyncio.gather(*(m.bearer() for m in managers for _ in range(10)))
    assert len(set(tokens)) == 1
    assert env.token_calls() == 2
    assert await env.app.oauth.account_id(tokens[0]) == "1001"  # family not revoked


async def test_a_dead_refresh_token_needs_reauth(env: Setup) -> None:
    connection = await _installed(env)
    refresh = env.cipher.decrypt(await env.pool.fetchval("SELECT refresh_token FROM tokens"))
    family = env.mailium.state.refresh[refresh].family
    env.mailium.state.revoke_family(family)
    env.clock.advance(3600)
    with capture_logs() as logs, pytest.raises(NeedsReauth):
        await env.app.token_manager(connection).bearer()
    assert await env.pool.fetchval("SELECT status FROM connections") == "needs_reauth"
    assert [e["event"] for e in logs].count("connection_auth_failed") == 1
    assert refresh not in repr(logs)


async def test_uninstall_revokes_and_purges_and_is_idempotent(env: Setup) -> None:
    connection = await _installed(env)
    await seed_install_rows(env.pool, connection, "per-install-flow")
    refresh = env.cipher.decrypt(await env.pool.fetchval("SELECT refresh_token FROM tokens"))
    query = env.mailium.signed({"accid": "1001"})
    async with env.http.post(f"{env.base}/apps/mailium/uninstall?{query}") as r:
        assert r.status == 200
        assert await r.json() == {}
    assert env.mailium.state.refresh[refresh].revoked
    counts = await install_row_counts(env.pool, connection, "per-install-flow")
    assert set(counts.values()) == {0}, counts
    revokes = len(env.mailium.state.calls("/oauth/revoke"))
    async with env.http.post(f"{env.base}/apps/mailium/uninstall?{query}") as r:
        assert r.status == 200
    assert len(env.mailium.state.calls("/oauth/revoke")) == revokes


@pytest.mark.parametrize(
    "query",
    [
        "accid=1001",
        "accid=1001&timestamp=1&hmac=" + "0" * 64,
    ],
)
async def test_unsigned_or_forged_uninstall_changes_nothing(env: Setup, query: str) -> None:
    connection = await _installed(env)
    async with env.http.post(f"{env.base}/apps/mailium/uninstall?{query}") as r:
        assert r.status == 401
    counts = await install_row_counts(env.pool, connection, "none")
    assert counts["tokens"] == 1
    assert await env.pool.fetchval("SELECT status FROM connections") == "active"


async def test_an_uninstall_signed_with_another_secret_or_too_old_is_refused(env: Setup) -> None:
    await _installed(env)
    forged = env.mailium.signed({"accid": "1001"}, secret="guessed")
    async with env.http.post(f"{env.base}/apps/mailium/uninstall?{forged}") as r:
        assert r.status == 401
    old = env.mailium.signed({"accid": "1001"})
    env.clock.advance(301)
    async with env.http.post(f"{env.base}/apps/mailium/uninstall?{old}") as r:
        assert r.status == 401
    assert await env.pool.fetchval("SELECT status FROM connections") == "active"


async def test_an_unreachable_token_endpoint_gets_an_error_page_and_one_log_line(
    db_pool: asyncpg.Pool,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    async for env in _setup(db_pool, base_url=nowhere):
        async with env.browser() as browser:
            async with browser.get(f"{env.base}/apps/mailium/install", allow_redirects=False) as r:
                assert r.status == 302
                state = r.headers["Location"].split("state=")[1].split("&")[0]
            callback = f"{env.base}/apps/mailium/callback?code=c0de&state={state}"
            with capture_logs() as logs:
                async with browser.get(callback) as r:
                    text = await r.text()
                    assert r.status == 503, text
                    assert r.headers["Retry-After"] == "60"
        assert "Traceback" not in text
        assert "Start the install again in a minute (/apps/mailium/install)" in text
        failed = [e for e in logs if e["event"] == "oauth_token_failed"]
        assert len(failed) == 1 and failed[0]["retriable"] is True
        assert await env.pool.fetchval("SELECT count(*) FROM connections") == 0


async def test_pending_states_are_capped_and_expire(env: Setup) -> None:
    env.app.max_states = 3
    url = f"{env.base}/apps/mailium/install"
    for _ in range(3):
        async with env.http.get(url, allow_redirects=False) as r:
            assert r.status == 302
    with capture_logs() as logs:
        async with env.http.get(url, allow_redirects=False) as r:
            assert r.status == 503
            assert r.headers["Retry-After"]
    assert "app_install_shed" in [e["event"] for e in logs]
    assert await env.pool.fetchval("SELECT count(*) FROM oauth_states") == 3
    env.clock.advance(STATE_TTL.total_seconds() + 1)
    async with env.http.get(url, allow_redirects=False) as r:
        assert r.status == 302
    assert await env.pool.fetchval("SELECT count(*) FROM oauth_states") == 1


async def test_the_state_cookie_is_secure_when_the_public_url_is_https(
    db_pool: asyncpg.Pool,
) -> None:
    public = "https://connector.example.com/apps/mailium/callback"
    async for setup in _setup(db_pool, redirect_uri=public):
        # Plain http on our side, as behind a TLS-terminating proxy.
        async with setup.http.get(f"{setup.base}/apps/mailium/install", allow_redirects=False) as r:
            assert r.status == 302
            cookie = r.cookies[COOKIE]
        assert cookie["secure"] is True
        assert cookie["httponly"] is True


async def test_the_state_cookie_stays_plain_for_a_plain_http_setup(env: Setup) -> None:
    async with env.http.get(f"{env.base}/apps/mailium/install", allow_redirects=False) as r:
        assert not r.cookies[COOKIE]["secure"]


@pytest.mark.parametrize(
    ("query", "browser_state"),
    [("state=abc&code=x", "é"), ("state=%C3%A9&code=x", "abc"), ("state=%C3%A9&code=x", "é")],
)
async def test_non_ascii_states_are_refused_not_a_crash(
    env: Setup, query: str, browser_state: str
) -> None:
    with pytest.raises(InstallRefused):
        await env.app.complete(query, browser_state=browser_state)
    assert env.token_calls() == 0
