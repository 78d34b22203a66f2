"""The webhook action against receivers that misbehave."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from actions.webhook import RESPONSE_LIMIT, Params, Webhook
from tests.integration.dispatch_support import SECRET
from tests.integration.test_webhook_urls import EVENT, context

CHUNK = b"x" * 65536


@asynccontextmanager
async def endless_receiver(sent: list[int]) -> AsyncIterator[str]:
    """Answers 200 with a body that never ends; counts the bytes it managed to send."""

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent.append(0)
        try:
            while True:
                await response.write(CHUNK)
                sent[-1] += len(CHUNK)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


async def test_only_the_head_of_a_huge_answer_is_read() -> None:
    sent: list[int] = []
    async with endless_receiver(sent) as url, aiohttp.ClientSession() as http:
        # Reading the whole answer would run into this timeout and count as a failure.
        params = Params.model_validate({"url": url, "secret": SECRET, "timeout": "10s"})
        result = await Webhook().run(context(http), EVENT, params)
    assert result.status_code == 200
    assert result.detail is not None
    assert result.detail.startswith("xxxx") and len(result.detail) <= RESPONSE_LIMIT + 1
