"""Webhook URLs carry their receiver's secret: only scheme, host and port are ever written."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
import structlog
from aiohttp import web
from structlog.testing import capture_logs

from actions.webhook import Params, Webhook, WebhookRetriable
from connector import logging as connector_logging
from connector.dispatch import Dispatcher
from connector.egress import EgressPolicy, guarded_session
from connector.errors import FatalError
from connector.plugins import ActionContext, StoredEvent
from tests.integration.dispatch_support import (
    SECRET,
    T0,
    FakeClock,
    attempts,
    delivery,
    flow_file,
    insert_event,
    receiver,
    webhook_flow,
)

PATH_SECRET = "B0654321/SeCrEtPaThToKeN77"
QUERY_SECRET = "q-s3cret-9f8e7d"
SECRET_TAIL = f"/services/T0123456/{PATH_SECRET}?token={QUERY_SECRET}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with guarded_session(EgressPolicy(["127.0.0.1/32"])) as session:
        yield session


def leaks(text: str | None) -> bool:
    text = text or ""
    return any(part in text for part in (PATH_SECRET, QUERY_SECRET, "T0123456", "/services"))


async def test_summaries_and_errors_name_only_the_origin(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    async with receiver() as rx:
        config = flow_file(webhook_flow("hooks", rx.url + SECRET_TAIL))
        worker = Dispatcher(db_pool, config, http=http, clock=FakeClock(), worker_id="w1")
        async with db_pool.acquire() as conn:
            [ok] = await insert_event(conn, "hooks", "ev-ok", {"email": "a@y.z"})
        with capture_logs() as logs:
            assert await worker.run_once() == 1
        rx.respond = lambda _r: web.Response(status=503, text="down")
        async with db_pool.acquire() as conn:
            [failing] = await insert_event(conn, "hooks", "ev-503", {"email": "b@y.z"})
        with capture_logs() as more:
            assert await worker.run_once() == 1
        assert rx.received[0].path == SECRET_TAIL.split("?")[0]
        async with db_pool.acquire() as conn:
            delivered = await delivery(conn, ok)
            retried = await delivery(conn, failing)
            tries = await attempts(conn, ok) + await attempts(conn, failing)
    assert delivered["state"] == "delivered"
    assert delivered["summary"] == f"POST {rx.url} → 200"
    assert retried["state"] == "pending"
    assert retried["last_error"] == f"POST {rx.url} → 503"
    for row in (delivered, retried, *tries):
        assert not leaks(json.dumps({k: str(v) for k, v in dict(row).items()}))
    [line] = [e for e in logs if e["event"] == "trigger_delivered"]
    assert line["summary"] == f"POST {rx.url} → 200"
    assert not leaks(json.dumps(logs + more, default=str))


def context(http: aiohttp.ClientSession) -> ActionContext:
    return ActionContext(
        delivery_id="00000000-0000-0000-0000-000000000001",
        attempt=1,
        flow="hooks",
        action_index=0,
        connection_id=None,
        http=http,
        providers=None,
        clock=FakeClock(),
    )


EVENT = StoredEvent(
    id="ev-1",
    flow="hooks",
    trigger="sendpulse.subscriber_added",
    item_key="a@y.z",
    payload={"email": "a@y.z"},
    created_at=T0,
    occurred_at=None,
)


@pytest.mark.parametrize(
    ("url", "named"),
    [
        # aiohttp's InvalidURL, whose message is the whole URL.
        (f"http://127.0.0.1:99999{SECRET_TAIL}", "http://127.0.0.1"),
        # A plain ValueError from IDNA encoding.
        (f"http://a..b{SECRET_TAIL}", "http://a..b"),
    ],
)
async def test_an_invalid_rendered_url_is_fatal_without_its_path(url: str, named: str) -> None:
    params = Params.model_validate({"url": "{{ event.id }}", "secret": SECRET})
    params = params.model_copy(update={"url": url})
    async with aiohttp.ClientSession() as http:
        with pytest.raises(FatalError) as caught:
            await Webhook().run(context(http), EVENT, params)
    assert f"invalid url for {named}" in str(caught.value)
    assert not leaks(str(caught.value))


async def test_a_connection_failure_names_only_the_origin() -> None:
    params = Params.model_validate({"url": f"http://127.0.0.1:9{SECRET_TAIL}", "secret": SECRET})
    async with aiohttp.ClientSession() as http:
        # Nothing listens on port 9: a refused connection, which a later attempt may get past.
        with pytest.raises(WebhookRetriable) as caught:
            await Webhook().run(context(http), EVENT, params)
    assert "POST http://127.0.0.1:9 failed" in str(caught.value)
    assert not leaks(str(caught.value))


@pytest.mark.usefixtures("restore_logging")
def test_configured_webhook_urls_are_scrubbed_from_logs() -> None:
    url = f"https://hooks.example.com{SECRET_TAIL}"
    flow_file(webhook_flow("hooks", url))
    out = io.StringIO()
    connector_logging.configure(level="INFO", fmt="json", stream=out)
    log = structlog.get_logger("t")
    log.warning("library_said", detail=f"request to {url} failed")
    log.warning("library_said", detail=f"GET {SECRET_TAIL} 500")
    assert not leaks(out.getvalue())
    assert out.getvalue().count(connector_logging.REDACTED) == 2
