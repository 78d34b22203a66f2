"""Helpers for the sandbox's own tests: an HTTP session that holds a token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connector.sandbox.harness import Sandbox, start_sandbox


class Api:
    """A bare HTTP caller with a bearer token; no retries, no refresh (tests see everything)."""

    def __init__(self, session: aiohttp.ClientSession, sb: Sandbox) -> None:
        self.session = session
        self.sb = sb
        self.token: str | None = None

    async def login(self, client_id: str | None = None, secret: str | None = None) -> str:
        async with self.session.post(
            f"{self.sb.base_url}/oauth/access_token",
            json={
                "grant_type": "client_credentials",
                "client_id": client_id or self.sb.client_id,
                "client_secret": secret or self.sb.client_secret,
            },
        ) as resp:
            assert resp.status == 200, await resp.text()
            token: str = (await resp.json())["access_token"]
        self.token = token
        return token

    async def call(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with self.session.request(
            method, f"{self.sb.base_url}{path}", headers=headers, **kwargs
        ) as resp:
            text = await resp.text()
            try:
                return resp.status, await resp.json(content_type=None)
            except ValueError:
                return resp.status, text

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("POST", path, **kwargs)


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with start_sandbox(rate_limit=None) as running:
        yield running


@pytest.fixture
async def api(sb: Sandbox) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        caller = Api(session, sb)
        await caller.login()
        yield caller


class Receiver:
    """A loopback HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.status = 200
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return web.json_response({}, status=self.status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    keeper = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", keeper.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    keeper.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield keeper
    finally:
        await runner.cleanup()
