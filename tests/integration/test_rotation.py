"""Encryption-key rotation: rows move to the newest key as they are read, or all at once."""

from __future__ import annotations

import aiohttp
import asyncpg
from cryptography.fernet import Fernet
from structlog.testing import capture_logs

from connector.auth.crypto import Cipher
from connector.auth.rotation import rotate_all
from connector.sandbox.harness import Sandbox
from tests.e2e.conftest import cli_env, run_cli
from tests.integration.test_tokens import make, token_calls

OLD, NEW = Fernet.generate_key(), Fernet.generate_key()
BOTH = NEW + b"," + OLD


async def stored_under_old(
    sb: Sandbox, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> asyncpg.Record:
    providers = make(sb, http, pool, key=OLD)
    await providers.ensure_connections()
    await providers.sendpulse("main").request("GET", "/addressbooks")
    return await pool.fetchrow("SELECT access_token, refresh_token FROM tokens")


async def test_a_token_read_under_the_old_key_is_stored_again_under_the_new_one(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    before = await stored_under_old(sb, http, db_pool)
    assert not Cipher(NEW).is_current(before["access_token"])
    providers = make(sb, http, db_pool, key=BOTH)
    await providers.sendpulse("main").request("GET", "/addressbooks")
    assert token_calls(sb) == 1  # the stored token was used, not replaced
    after = await db_pool.fetchrow("SELECT access_token FROM tokens")
    assert Cipher(NEW).decrypt(after["access_token"]) == Cipher(OLD).decrypt(before["access_token"])


async def test_a_token_no_key_opens_is_fetched_again_instead_of_failing(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    await stored_under_old(sb, http, db_pool)
    providers = make(sb, http, db_pool, key=NEW)  # the old key dropped too early
    with capture_logs() as logs:
        await providers.sendpulse("main").request("GET", "/addressbooks")
    assert token_calls(sb) == 2
    assert [e["connection"] for e in logs if e["event"] == "token_undecryptable"] == ["main"]
    row = await db_pool.fetchrow("SELECT access_token FROM tokens")
    assert Cipher(NEW).is_current(row["access_token"])


async def test_rotate_all_moves_every_row_and_then_finds_nothing_left(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    await stored_under_old(sb, http, db_pool)
    cipher = Cipher(BOTH)
    async with db_pool.acquire() as conn:
        first = await rotate_all(conn, cipher)
        second = await rotate_all(conn, cipher)
    assert (first.tokens, first.credentials, first.done) == (1, 1, True)
    assert (second.tokens, second.credentials, second.done) == (0, 0, True)
    only_new = Cipher(NEW)
    token = await db_pool.fetchrow("SELECT access_token FROM tokens")
    credentials = await db_pool.fetchval("SELECT credentials FROM connections")
    assert only_new.is_current(token["access_token"]) and only_new.is_current(credentials)


async def test_rotate_all_reports_what_no_key_opens(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool
) -> None:
    await stored_under_old(sb, http, db_pool)
    async with db_pool.acquire() as conn:
        done = await rotate_all(conn, Cipher(NEW))
    assert done.tokens_dropped == ["main"]
    assert done.unreadable_credentials == ["main"]
    assert not done.done
    assert await db_pool.fetchval("SELECT count(*) FROM tokens") == 0


async def test_secret_rotate_command(
    sb: Sandbox, http: aiohttp.ClientSession, db_pool: asyncpg.Pool, database: str
) -> None:
    await stored_under_old(sb, http, db_pool)
    env = cli_env(DATABASE_URL=database, CONNECTOR_SECRET_KEY=BOTH.decode())
    result = run_cli("secret", "rotate", env=env)
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 1 token(s) and 1 stored credential(s)" in result.stdout
    assert "the old key may be removed" in result.stdout
    refused = run_cli(
        "secret",
        "rotate",
        env=cli_env(DATABASE_URL=database, CONNECTOR_SECRET_KEY=Fernet.generate_key().decode()),
    )
    assert refused.returncode == 1
    assert "no configured key opens the stored credentials of: main" in refused.stdout
