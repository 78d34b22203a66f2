"""Installs as connections: ids that never collide, and a purge that leaves nothing behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from cryptography.fernet import Fernet

from connector import leases
from connector.auth.crypto import Cipher
from connector.auth.installs import (
    InstallRefused,
    install_connection_id,
    purge_install,
    store_install,
)
from connector.auth.tokens import IssuedToken
from connector.providers.fakes import install_row_counts, seed_install_rows

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CIPHER = Cipher(Fernet.generate_key())


def test_plain_accounts_keep_their_readable_id() -> None:
    assert install_connection_id("store", "777") == "store-777"
    assert install_connection_id("store", "Acme42") == "store-Acme42"


def test_accounts_that_sanitise_alike_get_different_ids() -> None:
    accounts = ["12.3", "12-3", "12 3", "12_3", "123", "12--3", "x" * 41, "x" * 42, ""]
    ids = [install_connection_id("store", a) for a in accounts]
    assert len(set(ids)) == len(accounts), ids
    # Still readable, and free of anything a URL path or a flow name would choke on.
    assert ids[0].startswith("store-12-3-")
    for made in ids:
        assert made.replace("-", "").isalnum(), made


async def store(conn: asyncpg.Connection, connection_id: str, account: str, token: str) -> str:
    return await store_install(
        conn,
        CIPHER,
        connection_id=connection_id,
        provider="sendpulse",
        install_id=f"sendpulse:42:{account}",
        account_id=account,
        scopes=None,
        credentials=None,
        token=IssuedToken(access_token=token, expires_in=3600),
        now=NOW,
    )


async def test_an_id_held_by_another_account_is_refused(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        async with conn.transaction():
            assert await store(conn, "store-12-3", "12-3", "first-token") == "store-12-3"
        # Ids made before ids were hashed can still meet another account's.
        with pytest.raises(InstallRefused, match="belongs to another account"):
            async with conn.transaction():
                await store(conn, "store-12-3", "12.3", "second-token")
        row = await conn.fetchrow("SELECT account_id, install_id FROM connections")
        assert dict(row) == {"account_id": "12-3", "install_id": "sendpulse:42:12-3"}
        token = await conn.fetchval("SELECT access_token FROM tokens")
        assert CIPHER.decrypt(token) == "first-token"


async def test_a_flow_file_connection_is_never_taken_over(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        await conn.execute("INSERT INTO connections (id, provider) VALUES ('store-9', 'sendpulse')")
        with pytest.raises(InstallRefused):
            async with conn.transaction():
                await store(conn, "store-9", "9", "token")
        assert await conn.fetchval("SELECT source FROM connections") == "config"
        assert await conn.fetchval("SELECT count(*) FROM tokens") == 0


async def test_an_install_stored_before_keeps_its_id(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        async with conn.transaction():
            await store(conn, "store-legacy_id", "a_b", "t1")
        async with conn.transaction():
            again = await store(conn, install_connection_id("store", "a_b"), "a_b", "t2")
        assert again == "store-legacy_id"
        assert await conn.fetchval("SELECT count(*) FROM connections") == 1


async def test_a_poll_in_flight_cannot_commit_after_the_purge(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        async with conn.transaction():
            await store(conn, "store-5", "5", "token")
        await seed_install_rows(db_pool, "store-5", "per-install")
        resource = leases.connection_resource("store-5", "")
        assert await leases.acquire(conn, resource, "poller", NOW, timedelta(minutes=5))
        async with conn.transaction():
            await purge_install(conn, "store-5")
        counts = await install_row_counts(db_pool, "store-5", "per-install")
        assert set(counts.values()) == {0}, counts
        # The poll that held the lease reaches its commit: it must find it gone.
        with pytest.raises(leases.LeaseLost):
            async with conn.transaction():
                await leases.check_for_commit(conn, resource, "poller", NOW)
