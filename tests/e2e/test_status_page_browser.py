"""The status page in a real browser: headless Chromium (the OS package) against a worker.

The worker runs as a process with a healthy flow, a flow whose mailing list does not exist,
and one dead delivery. The test reads the page as a person would, presses Replay, and sees
the delivery arrive at the receiver under its own id and leave the dead list. A screenshot of
each step is kept under ``test-artifacts/`` (ignored by git).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from connector.errors import SignatureInvalid
from connector.sandbox.harness import Sandbox
from connector.webhook_signing import generate_secret, verify
from tests.e2e.conftest import ROOT, SECRET_KEY, Daemon, cli_env, eventually, free_port
from tests.e2e.conftest import write_flows as write_flow_file

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = ROOT / "test-artifacts"
SECRET = generate_secret()

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs the chromium and chromium-driver packages (make test installs them)",
)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[list[str], str]]:
    """A webhook receiver that checks each signature and keeps the webhook ids it got."""
    got: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            got.append(verify([SECRET], request.headers, body, now=datetime.now(UTC)))
        except SignatureInvalid:
            return web.Response(status=401)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield got, f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="connector-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1500,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


async def dead_delivery(dsn: str, flow: str) -> str:
    """An event of ``flow`` whose webhook delivery gave up, as after a long outage."""
    delivery = uuid.uuid4()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO events (id, flow_name, connection_id, trigger_type, item_key, payload)"
            " VALUES ('ev-browser', $1, 'c1', 'sendpulse.subscriber_added',"
            " 'dead@example.com', $2::jsonb)",
            flow,
            json.dumps({"email": "dead@example.com", "variables": {}}),
        )
        await conn.execute(
            "INSERT INTO deliveries (id, event_id, flow_name, action_index, action_type, state,"
            " attempt, last_error) VALUES ($1, 'ev-browser', $2, 0, 'webhook', 'dead', 8,"
            " 'receiver answered 503 Service Unavailable')",
            delivery,
            flow,
        )
    finally:
        await conn.close()
    return str(delivery)


async def flow_error(dsn: str, flow: str) -> str | None:
    conn = await asyncpg.connect(dsn)
    try:
        error: str | None = await conn.fetchval(
            "SELECT last_error FROM flow_states WHERE flow_name = $1", flow
        )
        return error
    finally:
        await conn.close()


async def test_status_page_shows_a_failing_flow_and_replays_a_dead_delivery(
    database: str,
    tmp_path: Path,
    daemons: list[Daemon],
    sb: Sandbox,
    receiver: tuple[list[str], str],
    browser: Any,
) -> None:
    from selenium.webdriver.common.by import By

    got, url = receiver
    book = sb.state.add_book("Browser").id
    sb.state.add_subscriber(book, "first@example.com")
    config = write_flow_file(
        tmp_path / "flows.yaml",
        sb,
        url,
        {"newsletter": ("c1", book), "wrong-list": ("c1", 424242)},
        secret=SECRET,
        start="all",
    )
    dead = await dead_delivery(database, "newsletter")
    admin = free_port()
    worker = Daemon(
        ["run", "--config", str(config)],
        cli_env(
            DATABASE_URL=database,
            CONNECTOR_SECRET_KEY=SECRET_KEY,
            CONNECTOR_HOME=str(tmp_path / "home"),
            PORT="0",
            ADMIN_PORT=str(admin),
        ),
        tmp_path / "worker.log",
    )
    daemons.append(worker)
    await eventually(lambda: len(got) >= 1, "the first subscriber's delivery", 45)
    await eventually(lambda: flow_error(database, "wrong-list"), "the wrong list to fail", 45)

    page = f"http://127.0.0.1:{admin}/status"
    ARTIFACTS.mkdir(exist_ok=True)

    def look() -> dict[str, Any]:
        browser.get(page)
        rows = {
            row.get_attribute("id"): row.get_attribute("data-state")
            for row in browser.find_elements(By.CSS_SELECTOR, "#flows tr[data-state]")
        }
        error = browser.find_element(By.ID, "error-wrong-list").text
        dead_rows = browser.find_elements(By.ID, f"dead-{dead}")
        browser.save_screenshot(str(ARTIFACTS / "status-page.png"))
        return {
            "rows": rows,
            "error": error,
            "dead_text": dead_rows[0].text if dead_rows else "",
            "overall": browser.find_element(By.ID, "overall").text,
            "source": browser.page_source,
        }

    seen = await asyncio.to_thread(look)
    assert seen["rows"] == {"flow-newsletter": "ok", "flow-wrong-list": "failing"}
    assert "Book not found" in seen["error"]
    assert "dead@example.com" in seen["dead_text"]
    assert "receiver answered 503" in seen["dead_text"]
    assert seen["overall"] == "some flows need attention"
    assert "secret-c1" not in seen["source"] and SECRET not in seen["source"]

    def press_replay() -> str:
        row = browser.find_element(By.ID, f"dead-{dead}")
        row.find_element(By.CSS_SELECTOR, "button.replay").click()
        notice = browser.find_element(By.ID, "notice").text
        browser.save_screenshot(str(ARTIFACTS / "status-page-replayed.png"))
        return str(notice)

    notice = await asyncio.to_thread(press_replay)
    assert notice == f"Delivery {dead} replayed: it goes out again shortly."
    await eventually(lambda: dead in got, "the replayed delivery at the receiver", 30)
    assert got.count(dead) == 1

    def after() -> tuple[bool, str, str]:
        browser.get(page)
        gone = not browser.find_elements(By.ID, f"dead-{dead}")
        empty = browser.find_element(By.ID, "no-dead").text
        healthy = browser.find_element(By.ID, "flow-newsletter").text
        browser.save_screenshot(str(ARTIFACTS / "status-page-after.png"))
        return gone, str(empty), str(healthy)

    gone, empty, healthy = await asyncio.to_thread(after)
    assert gone and empty == "No dead deliveries."
    assert "delivered" in healthy and "dead" not in healthy
