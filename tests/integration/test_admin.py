"""The admin listener: who may read /readyz, /metrics and the status page, over a real socket."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import asyncpg
import pytest

from connector.admin import AdminAccess, AdminUnprotected, build_admin_app, is_loopback
from connector.errors import ConfigError
from connector.web import WebState, build_app, serve

TOKEN = "admin-token-0123456789abcdef"
EVERYWHERE = "0.0.0.0"  # noqa: S104 - the address under test, never bound here


@asynccontextmanager
async def admin_server(pool: asyncpg.Pool, access: AdminAccess) -> AsyncIterator[str]:
    app = build_admin_app(WebState(pool=pool, scheduler_running=lambda: True), access)
    runner = await serve(app, "127.0.0.1", 0, listener="admin")
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        await resp.read()
        return resp.status


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


async def test_loopback_without_credentials_is_open(db_pool: asyncpg.Pool) -> None:
    async with admin_server(db_pool, AdminAccess()) as base:
        assert await status_of(f"{base}/readyz") == 200
        assert await status_of(f"{base}/metrics") == 200


async def test_a_bearer_token_is_required_once_set(db_pool: asyncpg.Pool) -> None:
    async with admin_server(db_pool, AdminAccess(token=TOKEN)) as base:
        for path in ("/readyz", "/metrics", "/healthz"):
            assert await status_of(f"{base}{path}") == 401
        assert await status_of(f"{base}/metrics", {"Authorization": "Bearer wrong"}) == 401
        assert await status_of(f"{base}/metrics", {"Authorization": f"Bearer {TOKEN}x"}) == 401
        assert await status_of(f"{base}/metrics", {"Authorization": TOKEN}) == 401
        # Basic credentials do not stand in for a token nobody configured a pair for.
        assert await status_of(f"{base}/metrics", basic("admin", TOKEN)) == 401
        assert await status_of(f"{base}/metrics", {"Authorization": f"Bearer {TOKEN}"}) == 200
        assert await status_of(f"{base}/metrics", {"Authorization": f"bearer  {TOKEN} "}) == 200


async def test_basic_auth_checks_user_and_password(db_pool: asyncpg.Pool) -> None:
    access = AdminAccess(user="ops", password="pässword-1")
    async with admin_server(db_pool, access) as base:
        assert await status_of(f"{base}/readyz") == 401
        assert await status_of(f"{base}/readyz", basic("ops", "pässword-1")) == 200
        assert await status_of(f"{base}/readyz", basic("ops", "password-1")) == 401
        assert await status_of(f"{base}/readyz", basic("other", "pässword-1")) == 401
        assert await status_of(f"{base}/readyz", basic("ops", "")) == 401
        # Not base64, no colon, non-ASCII bytes: refused, never a 500.
        assert await status_of(f"{base}/readyz", {"Authorization": "Basic !!!"}) == 401
        nocolon = base64.b64encode("opspässword-1".encode()).decode()
        assert await status_of(f"{base}/readyz", {"Authorization": f"Basic {nocolon}"}) == 401
        latin = base64.b64encode("ops:p\xe4ss".encode("latin-1")).decode()
        assert await status_of(f"{base}/readyz", {"Authorization": f"Basic {latin}"}) == 401
        assert await status_of(f"{base}/readyz", {"Authorization": "Bearer pässword-1"}) == 401


async def test_401_names_the_scheme_and_pages_are_not_cached(db_pool: asyncpg.Pool) -> None:
    async with admin_server(db_pool, AdminAccess(user="ops", password="secret-pw")) as base:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/metrics") as resp:
                assert resp.status == 401
                assert resp.headers["WWW-Authenticate"].startswith("Basic")
            async with session.get(f"{base}/metrics", headers=basic("ops", "secret-pw")) as resp:
                assert resp.status == 200
                assert resp.headers["Cache-Control"] == "no-store"


async def test_the_public_listener_keeps_only_healthz(db_pool: asyncpg.Pool) -> None:
    app = build_app(WebState(pool=db_pool, scheduler_running=lambda: True), admin=False)
    runner = await serve(app, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        assert await status_of(f"{base}/healthz") == 200
        assert await status_of(f"{base}/readyz") == 404
        assert await status_of(f"{base}/metrics") == 404
        assert await status_of(f"{base}/status") == 404
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        (EVERYWHERE, False),
        ("::", False),
        ("192.168.1.4", False),
        ("admin.example.org", False),
        ("", False),
    ],
)
def test_which_hosts_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_binding_off_loopback_needs_credentials() -> None:
    with pytest.raises(AdminUnprotected, match="CONNECTOR_ADMIN_TOKEN"):
        AdminAccess().check_binding(EVERYWHERE)
    with pytest.raises(AdminUnprotected):
        AdminAccess().check_binding("admin.example.org")
    AdminAccess().check_binding("127.0.0.1")
    AdminAccess(token=TOKEN).check_binding(EVERYWHERE)
    AdminAccess(user="ops", password="pw").check_binding(EVERYWHERE)


@pytest.mark.parametrize(
    ("env", "check"),
    [
        ({}, lambda a: not a.protected),
        ({"CONNECTOR_ADMIN_TOKEN": "  "}, lambda a: not a.protected),
        ({"CONNECTOR_ADMIN_TOKEN": TOKEN}, lambda a: a.token == TOKEN),
        (
            {"CONNECTOR_ADMIN_USER": "ops", "CONNECTOR_ADMIN_PASSWORD": "pw"},
            lambda a: a.user == "ops" and a.password == "pw",
        ),
    ],
)
def test_credentials_come_from_the_environment(
    env: dict[str, str], check: Callable[[AdminAccess], bool]
) -> None:
    assert check(AdminAccess.from_env(env))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CONNECTOR_ADMIN_USER": "ops"}, "both"),
        ({"CONNECTOR_ADMIN_PASSWORD": "pw"}, "both"),
        ({"CONNECTOR_ADMIN_TOKEN": "short"}, "too short"),
    ],
)
def test_half_set_or_weak_credentials_are_config_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AdminAccess.from_env(env)
