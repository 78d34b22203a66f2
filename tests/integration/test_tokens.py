"""Token manager against the sandbox and a real Postgres: storage, refresh, single-flight, 401s."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import textwrap
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from cryptography.fernet import Fernet
from structlog.testing import capture_logs

from connector.auth.crypto import Cipher
from connector.errors import NeedsReauth
from connector.providers.fakes import FakeClock, RecordingSleep, sandbox_config
from connector.providers.provider_clients import ProviderClients
from connector.sandbox.harness import Sandbox, start_sandbox

TOKEN_PATH = "/oauth/access_token"
REPO_ROOT = str(Path(__file__).resolve().parents[2])


def make(
    sb: Sandbox,
    http: aiohttp.ClientSession,
    pool: asyncpg.Pool,
    *,
    key: bytes | None = None,
    clock: FakeClock | None = None,
    secret: str | None = None,
    **extra: object,
) -> ProviderClients:
    config = sandbox_config(
        sb.base_url, sb.client_id, secret or sb.client_secret, extra={"rate_limit": "10/s", **extra}
    )
    return ProviderClients(
        session=http,
        pool=pool,
        config=config,
        secret_key=key or Fernet.generate_key(),
        now=(clock or FakeClock()).now,
        sleep=RecordingSleep(),
    )


def token_calls(sb: Sandbox) -> int:
    return sum(1 for r in sb.requests() if r.path == TOKEN_PATH)


async def test_token_fetched_on_first_use_and_stored_as_ciphertext(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    key = Fernet.generate_key()
    providers = make(sb, http, db_pool, key=key)
    assert token_calls(sb) == 0
    await providers.sendpulse("main").request("GET", "/addressbooks")
    assert token_calls(sb) == 1
    issued = [t.value for t in sb.state.auth.tokens.values() if t.client_id == sb.client_id]
    assert len(issued) == 1
    row = await db_pool.fetchrow("SELECT access_token, expires_at FROM tokens")
    stored = bytes(row["access_token"])
    assert issued[0].encode() not in stored
    assert Cipher(key).decrypt(stored) == issued[0]


async def test_fifty_concurrent_callers_on_an_expiring_token_cause_one_refresh(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    clock = FakeClock()
    providers = make(sb, http, db_pool, clock=clock)
    client = providers.sendpulse("main")
    await client.request("GET", "/addressbooks")
    clock.advance(3600 - 240)  # 4 minutes left: inside the refresh margin
    auth = providers.auth["main"]
    tokens = await asyncio.gather(*(auth.bearer() for _ in range(50)))
    assert len(set(tokens)) == 1
    assert token_calls(sb) == 2
    # and the refreshed token works
    await client.request("GET", "/addressbooks")
    assert token_calls(sb) == 2


async def test_a_token_with_ten_minutes_left_is_not_refreshed(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    clock = FakeClock()
    client = make(sb, http, db_pool, clock=clock).sendpulse("main")
    await client.request("GET", "/addressbooks")
    clock.advance(3600 - 600)
    await client.request("GET", "/addressbooks")
    assert token_calls(sb) == 1
    clock.advance(301)  # now 299 s left
    await client.request("GET", "/addressbooks")
    assert token_calls(sb) == 2


async def test_single_flight_across_two_independent_managers(
    http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    # Two ProviderClients share nothing but the database: what two processes share.
    async with start_sandbox(rate_limit=10.0, latency=0.2) as sb:
        key = Fernet.generate_key()
        first = make(sb, http, db_pool, key=key)
        second = make(sb, http, db_pool, key=key)
        # With the row in place, only the advisory lock can serialise the two.
        await first.ensure_connections()
        callers = [first.sendpulse("main"), second.sendpulse("main")] * 5
        await asyncio.gather(*(c.request("GET", "/addressbooks") for c in callers))
        assert token_calls(sb) == 1
        assert {r.status for r in sb.requests() if r.path == "/addressbooks"} == {200}


SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import aiohttp, asyncpg
    from connector.providers.provider_clients import ProviderClients
    from connector.providers.fakes import sandbox_config

    async def main(dsn, base_url, client_id, secret, key):
        config = sandbox_config(base_url, client_id, secret, extra={"rate_limit": "10/s"})
        pool = await asyncpg.create_pool(dsn, min_size=5, max_size=5)
        async with aiohttp.ClientSession() as http:
            providers = ProviderClients(session=http, pool=pool, config=config,
                                        secret_key=key.encode())
            providers.sendpulse("main")
            # The barrier: everything is set up; wait for the test to release both at once.
            print("READY", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            tokens = await asyncio.gather(*(providers.auth["main"].bearer() for _ in range(25)))
            print("RESULT", len(set(tokens)), tokens[0][:6], flush=True)
        await pool.close()

    asyncio.run(main(*sys.argv[1:6]))
    """
)


async def test_single_flight_across_two_processes(database: str, db_pool: asyncpg.Pool) -> None:
    async with start_sandbox(rate_limit=10.0, latency=0.3) as sb:
        key = Fernet.generate_key().decode()
        await db_pool.execute("INSERT INTO connections (id, provider) VALUES ('main', 'sendpulse')")
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                SCRIPT,
                database,
                sb.base_url,
                sb.client_id,
                sb.client_secret,
                key,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=REPO_ROOT,
            )
            for _ in range(2)
        ]
        try:
            for proc in procs:
                assert proc.stdout is not None
                try:
                    ready = await asyncio.wait_for(proc.stdout.readline(), 60)
                except TimeoutError:
                    raise AssertionError("a child did not get ready within 60 s") from None
                assert ready.startswith(b"READY"), ready
            assert token_calls(sb) == 0
            # Both are waiting on their stdin now: one write each releases them together.
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(b"GO\n")
            await asyncio.gather(*(proc.stdin.drain() for proc in procs if proc.stdin))
            outputs = [await asyncio.wait_for(p.communicate(), 60) for p in procs]
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        for proc, (_out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err.decode()[-2000:]
        lines = [
            next(
                line.split()[1:] for line in out.decode().splitlines() if line.startswith("RESULT")
            )
            for out, _ in outputs
        ]
        assert [line[0] for line in lines] == ["1", "1"]  # one token within each process
        assert lines[0][1] == lines[1][1]  # and the same token in both
        assert token_calls(sb) == 1


async def test_401_invalidates_refreshes_once_and_retries(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    client = make(sb, http, db_pool).sendpulse("main")
    await client.request("GET", "/addressbooks")
    sb.revoke_tokens()
    assert await client.request("GET", "/addressbooks") == []
    assert [r.status for r in sb.requests() if r.path == "/addressbooks"] == [200, 401, 200]
    assert token_calls(sb) == 2
    version = await db_pool.fetchval("SELECT version FROM tokens WHERE connection_id = 'main'")
    assert version == 2


async def test_revoked_credentials_mark_the_connection_needs_reauth_once(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    providers = make(sb, http, db_pool)
    await providers.ensure_connections()
    client = providers.sendpulse("main")
    await client.request("GET", "/addressbooks")
    sb.add_client(sb.client_id, "rotated-by-the-account-owner")
    sb.revoke_tokens()
    with capture_logs() as logs:
        with pytest.raises(NeedsReauth):
            await client.request("GET", "/addressbooks")
        with pytest.raises(NeedsReauth):
            await client.request("GET", "/addressbooks")
    row = await db_pool.fetchrow("SELECT status, status_reason FROM connections WHERE id='main'")
    assert row["status"] == "needs_reauth"
    assert "invalid_client" in row["status_reason"]
    failures = [e for e in logs if e["event"] == "connection_auth_failed"]
    assert len(failures) == 1
    assert failures[0]["connection"] == "main"
    # the second call did not reach SendPulse at all
    assert [r.status for r in sb.requests() if r.path == "/addressbooks"] == [200, 401]
    assert token_calls(sb) == 2
    text = repr(logs)
    for secret in [sb.client_secret, *(t.value for t in sb.state.auth.tokens.values())]:
        assert secret not in text


async def test_invalid_client_on_first_fetch_needs_reauth(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    client = make(sb, http, db_pool, secret="wrong-secret-value").sendpulse("main")
    with capture_logs() as logs, pytest.raises(NeedsReauth, match="re-authorisation"):
        await client.request("GET", "/addressbooks")
    assert await db_pool.fetchval("SELECT status FROM connections WHERE id='main'") == (
        "needs_reauth"
    )
    assert "wrong-secret-value" not in repr(logs)
    assert [r.path for r in sb.requests()] == [TOKEN_PATH]


async def test_a_second_401_after_refresh_needs_reauth(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    client = make(sb, http, db_pool).sendpulse("main")
    await client.request("GET", "/addressbooks")
    # Every token is refused on use, though the token call itself still succeeds.
    sb.state.auth.valid = lambda value, now: None  # type: ignore[method-assign]
    with pytest.raises(NeedsReauth, match="refused too"):
        await client.request("GET", "/addressbooks")
    assert [r.status for r in sb.requests() if r.path == "/addressbooks"] == [200, 401, 401]
    assert token_calls(sb) == 2
    status = await db_pool.fetchval("SELECT status FROM connections WHERE id='main'")
    assert status == "needs_reauth"


async def test_a_process_started_after_needs_reauth_does_not_call_the_api(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    providers = make(sb, http, db_pool)
    await providers.ensure_connections()
    await db_pool.execute("UPDATE connections SET status = 'needs_reauth' WHERE id = 'main'")
    with pytest.raises(NeedsReauth):
        await make(sb, http, db_pool).sendpulse("main").request("GET", "/addressbooks")
    assert sb.requests() == []


async def test_changed_credentials_in_the_flow_file_reactivate_the_connection(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    key = Fernet.generate_key()
    old = make(sb, http, db_pool, key=key, secret="old-secret-1")
    await old.ensure_connections()
    with pytest.raises(NeedsReauth):
        await old.sendpulse("main").request("GET", "/addressbooks")
    again = make(sb, http, db_pool, key=key, secret="old-secret-1")
    await again.ensure_connections()
    assert await db_pool.fetchval("SELECT status FROM connections") == "needs_reauth"
    fixed = make(sb, http, db_pool, key=key)
    await fixed.ensure_connections()
    row = await db_pool.fetchrow("SELECT status, credentials FROM connections")
    assert row["status"] == "active"
    assert sb.client_secret.encode() not in bytes(row["credentials"])
    assert await fixed.sendpulse("main").request("GET", "/addressbooks") == []


async def test_api_key_connections_skip_the_token_call(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    api_key = sb.state.auth.add_api_key(sb.client_id)
    config = sandbox_config(sb.base_url, sb.client_id, sb.client_secret)
    doc = config.document.connections["main"].model_copy(
        update={"client_id": None, "client_secret": None}
    )
    from pydantic import SecretStr

    doc = doc.model_copy(update={"api_key": SecretStr(api_key)})
    config = dataclasses.replace(
        config, document=config.document.model_copy(update={"connections": {"main": doc}})
    )
    providers = ProviderClients(
        session=http, pool=db_pool, config=config, secret_key=Fernet.generate_key()
    )
    client = providers.sendpulse("main")
    assert await client.request("GET", "/addressbooks") == []
    assert token_calls(sb) == 0
    sb.revoke_tokens()
    with pytest.raises(NeedsReauth, match="API key"):
        await client.request("GET", "/addressbooks")
    assert [r.status for r in sb.requests()] == [200, 401]
