"""A connection pointed at another account: its flows start over, its old log stays.

The engine with the in-test triggers over two in-memory accounts, the flow-file connections
as the worker stores them, app installs, and the webhook intake.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml
from cryptography.fernet import Fernet
from structlog.testing import capture_logs

from connector import accounts
from connector.auth.crypto import Cipher
from connector.auth.installs import store_install
from connector.catalog import CATALOG
from connector.config import Config, Flow, parse
from connector.db import migrate as migrations
from connector.engine import PollResult, poll_flow
from connector.providers.provider_clients import ProviderClients
from tests.integration.test_engine import (
    T0,
    Clock,
    ItemCreated,
    ItemJoined,
    Params,
    Store,
    at,
    make_flow,
)
from tests.integration.test_intake import Rig, rig  # noqa: F401 - the intake fixture

OLD = "sendpulse|http://127.0.0.1:18201|client_id:a"
NEW = "sendpulse|http://127.0.0.1:18202|client_id:b"


class Accounts:
    """Two in-memory accounts behind one connection name, and a poll of either."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.old, self.new = Store(), Store()
        self.clock = Clock()

    async def poll(
        self, trigger: type[Any], store: Store, account: str | None, flow: Flow | None = None
    ) -> PollResult:
        result = await poll_flow(
            flow or make_flow(trigger),
            Params(),
            client=store,
            pool=self.pool,
            worker="w1",
            clock=self.clock,
            trigger=trigger,
            account=account,
        )
        assert result.status == "ok", result.error
        return result

    async def events(self) -> list[tuple[str, str]]:
        rows = await self.pool.fetch("SELECT item_key, payload FROM events ORDER BY created_at, id")
        return [(r["item_key"], r["payload"]) for r in rows]


@pytest.fixture
def two(db_pool: asyncpg.Pool) -> Accounts:
    return Accounts(db_pool)


# -- the engine ------------------------------------------------------------------------------


async def test_a_watermark_flow_starts_over_and_the_new_accounts_same_ids_are_not_lost(
    two: Accounts,
) -> None:
    two.old.items = {k: {"id": k, "at": at(-5), "status": "old"} for k in ("1", "2")}
    assert (await two.poll(ItemCreated, two.old, OLD)).baseline
    two.old.items["3"] = {"id": "3", "at": at(1), "status": "old"}
    two.clock.now = T0 + timedelta(minutes=2)
    assert (await two.poll(ItemCreated, two.old, OLD)).events_created == 1

    # The new account's items are newer than the old cursor, and its ids repeat the old ones:
    # under the old cursor they would all be announced as new.
    two.new.items = {k: {"id": k, "at": at(1.5), "status": "new"} for k in ("1", "2", "4")}
    two.clock.now = T0 + timedelta(minutes=3)
    switched = await two.poll(ItemCreated, two.new, NEW)
    assert (switched.baseline, switched.events_created) == (True, 0)
    # After its baseline: a "3" of its own (the old account's "3" was delivered) and a "5".
    two.new.items["3"] = {"id": "3", "at": at(4), "status": "new"}
    two.new.items["5"] = {"id": "5", "at": at(4), "status": "new"}
    two.clock.now = T0 + timedelta(minutes=5)
    after = await two.poll(ItemCreated, two.new, NEW)
    assert (after.baseline, after.events_created) == (False, 2)
    first, *later = [(k, p["status"]) for k, p in await two.events()]
    assert first == ("3", "old")
    assert sorted(later) == [("3", "new"), ("5", "new")]
    state = await two.pool.fetchrow("SELECT account_fingerprint FROM flow_states")
    assert state["account_fingerprint"] == NEW


async def test_a_snapshot_flow_starts_over_without_announcing_the_new_list(
    two: Accounts,
) -> None:
    two.old.items = {k: {"id": k} for k in ("a", "b")}
    await two.poll(ItemJoined, two.old, OLD)
    two.old.items["c"] = {"id": "c"}
    assert (await two.poll(ItemJoined, two.old, OLD)).events_created == 1

    # Compared with the old snapshot this list would be d, e added and a, b removed.
    two.new.items = {k: {"id": k} for k in ("c", "d", "e")}
    switched = await two.poll(ItemJoined, two.new, NEW)
    assert (switched.baseline, switched.events_created) == (True, 0)
    snapshot = await two.pool.fetch("SELECT item_key FROM snapshot_items ORDER BY item_key")
    assert [r["item_key"] for r in snapshot] == ["c", "d", "e"]
    two.new.items["a"] = {"id": "a"}
    del two.new.items["d"]
    after = await two.poll(ItemJoined, two.new, NEW)
    assert (after.baseline, after.events_created) == (False, 2)
    # The old account's "c" stays in the log beside the new account's "a" joining, "d" leaving.
    keys = [k for k, _ in await two.events()]
    assert (keys[0], sorted(keys[1:])) == ("c", ["a", "d"])


async def test_start_all_after_the_switch_delivers_the_new_accounts_newest_like_a_new_flow(
    two: Accounts,
) -> None:
    flow = make_flow(ItemCreated, start="all", max_first_run_events=2)
    two.old.items = {"1": {"id": "1", "at": at(-5)}}
    assert (await two.poll(ItemCreated, two.old, OLD, flow)).events_created == 1
    two.new.items = {k: {"id": k, "at": at(-10 + int(k))} for k in ("1", "2", "3")}
    switched = await two.poll(ItemCreated, two.new, NEW, flow)
    assert (switched.baseline, switched.events_created, switched.held_back) == (True, 2, 1)
    keys = [k for k, _ in await two.events()]
    assert (keys[0], sorted(keys[1:])) == ("1", ["2", "3"])


async def test_state_from_before_fingerprints_is_adopted_without_a_new_baseline(
    two: Accounts,
) -> None:
    two.old.items = {"a": {"id": "a"}}
    await two.poll(ItemJoined, two.old, None)
    assert await two.pool.fetchval("SELECT account_fingerprint FROM flow_states") is None
    two.old.items["b"] = {"id": "b"}
    adopted = await two.poll(ItemJoined, two.old, OLD)
    assert (adopted.baseline, adopted.events_created) == (False, 1)
    assert await two.pool.fetchval("SELECT account_fingerprint FROM flow_states") == OLD
    # Once adopted, the fingerprint counts: another account now starts over.
    two.new.items = {k: {"id": k} for k in ("x", "y")}
    assert (await two.poll(ItemJoined, two.new, NEW)).baseline


async def test_the_same_account_again_goes_on_from_its_cursor(two: Accounts) -> None:
    two.old.items = {"a": {"id": "a"}}
    await two.poll(ItemJoined, two.old, OLD)
    for _ in range(2):
        assert (await two.poll(ItemJoined, two.old, OLD)).baseline is False


# -- flow-file connections --------------------------------------------------------------------


def flows(base_url: str, client_id: str = "client-a", secret: str = "secret-a") -> Config:  # noqa: S107
    document = {
        "connections": {
            "main": {"client_id": client_id, "client_secret": secret, "base_url": base_url}
        },
        "flows": [
            {
                "name": "f1",
                "trigger": {
                    "type": "sendpulse.subscriber_added",
                    "params": {"mailing_list_id": 1},
                },
                "actions": [{"type": "log"}],
            }
        ],
    }
    return parse(yaml.safe_dump(document), CATALOG, "flows.yaml", env={})


KEY = Fernet.generate_key()


async def ensure(pool: asyncpg.Pool, http: aiohttp.ClientSession, config: Config) -> list[Any]:
    providers = ProviderClients(session=http, pool=pool, config=config, secret_key=KEY)
    with capture_logs() as logs:
        await providers.ensure_connections()
    return [e for e in logs if e["event"] == "connection_account_changed"]


async def row(pool: asyncpg.Pool) -> asyncpg.Record:
    return await pool.fetchrow(
        "SELECT account_fingerprint, account_changed_at FROM connections WHERE id = 'main'"
    )


async def test_a_new_connection_takes_its_fingerprint_without_a_change(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    config = flows("http://127.0.0.1:18201")
    assert await ensure(db_pool, http, config) == []
    stored = await row(db_pool)
    assert stored["account_fingerprint"] == accounts.of_connection(config.connections["main"])
    assert stored["account_changed_at"] is None
    # Loaded again (a restart, a reload): nothing changed, nothing logged.
    assert await ensure(db_pool, http, config) == []
    assert (await row(db_pool))["account_changed_at"] is None


async def test_another_account_is_logged_once_without_secrets_and_its_token_dropped(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    before = flows("http://127.0.0.1:18201")
    await ensure(db_pool, http, before)
    await db_pool.execute(
        "INSERT INTO tokens (connection_id, access_token, expires_at)"
        " VALUES ('main', 'x', now() + interval '1 hour')"
    )
    after = flows("http://127.0.0.1:18202")
    [changed] = await ensure(db_pool, http, after)
    old = accounts.of_connection(before.connections["main"])
    new = accounts.of_connection(after.connections["main"])
    assert changed["connection"] == "main"
    assert (changed["old_fingerprint"], changed["new_fingerprint"]) == (old, new)
    assert "secret-a" not in repr(changed)
    stored = await row(db_pool)
    assert stored["account_fingerprint"] == new
    assert stored["account_changed_at"] is not None
    assert await db_pool.fetchval("SELECT count(*) FROM tokens") == 0
    # A second worker loading the same file finds the change made: it is not logged again.
    assert await ensure(db_pool, http, after) == []
    assert (await row(db_pool))["account_changed_at"] == stored["account_changed_at"]


async def test_a_rotated_secret_is_the_same_account(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    await ensure(db_pool, http, flows("http://127.0.0.1:18201"))
    fingerprint = (await row(db_pool))["account_fingerprint"]
    assert await ensure(db_pool, http, flows("http://127.0.0.1:18201", secret="rotated")) == []
    assert (await row(db_pool))["account_fingerprint"] == fingerprint
    assert (await row(db_pool))["account_changed_at"] is None


async def test_a_new_client_id_on_the_same_server_is_another_account(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    await ensure(db_pool, http, flows("http://127.0.0.1:18201"))
    [changed] = await ensure(db_pool, http, flows("http://127.0.0.1:18201", client_id="client-b"))
    assert changed["new_fingerprint"].endswith("client_id:client-b")


# -- app installs ------------------------------------------------------------------------------


async def test_an_install_again_under_a_new_install_id_is_another_account(
    db_pool: asyncpg.Pool,
) -> None:
    cipher = Cipher(KEY)

    async def install(install_id: str) -> list[Any]:
        with capture_logs() as logs:
            async with db_pool.acquire() as conn, conn.transaction():
                await store_install(
                    conn,
                    cipher,
                    connection_id="store-7",
                    provider="sendpulse",
                    install_id=install_id,
                    account_id="7",
                    scopes=None,
                    credentials='{"client_id": "c", "client_secret": "s"}',
                    token=None,
                    now=T0,
                )
        return [e for e in logs if e["event"] == "connection_account_changed"]

    assert await install("sendpulse:app:1") == []
    assert await install("sendpulse:app:1") == []
    [changed] = await install("sendpulse:app:2")
    assert (changed["old_fingerprint"], changed["new_fingerprint"]) == (
        "install|sendpulse:app:1",
        "install|sendpulse:app:2",
    )
    stored = await db_pool.fetchrow(
        "SELECT account_fingerprint, account_changed_at FROM connections WHERE id = 'store-7'"
    )
    assert stored["account_fingerprint"] == "install|sendpulse:app:2"
    assert stored["account_changed_at"] is not None


# -- the webhook intake ------------------------------------------------------------------------


async def test_the_intake_makes_no_event_from_another_accounts_baseline(rig: Rig) -> None:  # noqa: F811
    await rig.h.pool.execute("UPDATE flow_states SET account_fingerprint = $1", OLD)
    rig.h.sb.state.add_subscriber(1, "stale@example.com", {})
    [delivery] = await rig.h.sb.flush_webhooks()
    assert delivery.status == 200
    assert await rig.events() == []
    snapshot = await rig.h.pool.fetch(
        "SELECT item_key FROM snapshot_items WHERE item_key = 'stale@example.com'"
    )
    assert snapshot == []


async def test_the_intake_goes_on_under_the_connections_own_account(rig: Rig) -> None:  # noqa: F811
    own = accounts.of_connection(rig.config.connections["main"])
    await rig.h.pool.execute("UPDATE flow_states SET account_fingerprint = $1", own)
    rig.h.sb.state.add_subscriber(1, "fresh@example.com", {})
    [delivery] = await rig.h.sb.flush_webhooks()
    assert delivery.status == 200
    assert [(r["flow_name"], r["item_key"]) for r in await rig.events()] == [
        ("added", "fresh@example.com")
    ]


async def test_installs_made_before_fingerprints_get_their_install_id_as_one(
    empty_database: str,
) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        [ours] = [m for m in migrations.available() if m.name == "account_fingerprint"]
        for earlier in (m for m in migrations.available() if m.version < ours.version):
            await conn.execute(earlier.sql)
        await conn.execute(
            "INSERT INTO connections (id, provider, source, install_id) VALUES"
            " ('store-7', 'sendpulse', 'app_install', 'sendpulse:app:1'),"
            " ('main', 'sendpulse', 'config', NULL)"
        )
        await conn.execute(ours.sql)
        rows = await conn.fetch(
            "SELECT id, account_fingerprint, account_changed_at FROM connections ORDER BY id"
        )
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [
        ("main", None, None),
        ("store-7", accounts.of_install("sendpulse:app:1"), None),
    ]
