"""The console renderer a person scans, and what the log scrubber leaves readable."""

from __future__ import annotations

import io
import json
import logging

import structlog

from connector import logging as connector_logging
from connector import progress
from connector.catalog import CATALOG
from connector.config import parse
from connector.console_log import ScanRenderer

EVENT_ID = "5f1c2a9b7e3d4c1a8b6e0f2d9c7b5a31"
WHSEC = "whsec_ZGVtby1zZWNyZXQtZm9yLWxvY2FsLXVzZS1vbmx5"
DELIVERY_ID = "0f8e7d6c-5b4a-4321-9876-543210fedcba"


def render(width: int = 400, **fields: object) -> str:
    event = {
        "timestamp": "2026-12-01T14:05:09.123456Z",
        "level": "info",
        "logger": "connector.dispatch",
        "event": "trigger_delivered",
        **fields,
    }
    return ScanRenderer(colors=False, width=lambda: width)(None, "info", event)


def test_the_telling_fields_come_first_and_ids_are_short() -> None:
    line = render(
        attempt=1,
        duration_ms=12,
        delivery_id=DELIVERY_ID,
        event_id=EVENT_ID,
        summary="POST http://127.0.0.1:8526/hooks/demo → 200",
        action="webhook",
        item_key="ann@example.com",
        trigger="sendpulse.subscriber_added",
        flow="demo-new-subscribers",
    )
    assert "\n" not in line
    assert line.startswith("14:05:09 info    trigger_delivered flow=demo-new-subscribers ")
    order = [line.index(f" {key}=") for key in ("flow", "trigger", "item_key", "action")]
    assert order == sorted(order)
    assert line.index(" summary=") < line.index(" attempt=")
    assert line.endswith(f" event_id={EVENT_ID[:8]}") and EVENT_ID not in line
    assert f"delivery_id={DELIVERY_ID[:8]}" in line and DELIVERY_ID not in line
    assert "summary='POST http://127.0.0.1:8526/hooks/demo → 200'" in line
    assert "logger" not in line


def test_a_narrow_terminal_gets_the_rest_on_indented_lines() -> None:
    line = render(width=70, flow="demo-new-subscribers", item_key="a@b.c", error="x" * 40)
    first, *rest = line.splitlines()
    assert first.startswith("14:05:09 info    trigger_delivered flow=demo-new-subscribers")
    assert rest and all(part.startswith("    ") for part in rest)
    assert "item_key=a@b.c" in line and "x" * 40 in line


def test_none_values_are_left_out_and_exceptions_follow() -> None:
    line = render(flow="f", error=None, exception="Traceback (most recent call last):\n  boom")
    assert "error=" not in line
    assert line.splitlines()[1] == "Traceback (most recent call last):"


def test_json_output_keeps_whole_ids() -> None:
    out = io.StringIO()
    connector_logging.configure(level="INFO", fmt="json", stream=out)
    structlog.get_logger("t").info("trigger_delivered", event_id=EVENT_ID, delivery_id=DELIVERY_ID)
    line = json.loads(out.getvalue())
    assert line["event_id"] == EVENT_ID and line["delivery_id"] == DELIVERY_ID


def test_console_output_through_configure() -> None:
    out = io.StringIO()
    connector_logging.configure(level="INFO", fmt="console", stream=out)
    structlog.get_logger("t").info("trigger_delivered", flow="f", event_id=EVENT_ID)
    logging.getLogger("aiohttp.client").warning("stdlib says %s", "hello")
    text = out.getvalue()
    assert f"trigger_delivered flow=f event_id={EVENT_ID[:8]}" in text
    assert "stdlib says hello" in text


def test_a_plain_receiver_url_shows_and_a_secret_one_does_not() -> None:
    slack = "https://hooks.slack.com/services/T0123/B0456/abcdefghijklmnopqrstuvwx"
    parse(
        f"""
connections:
  main: {{client_id: abc, client_secret: console-test-secret}}
flows:
  - name: demo
    trigger: {{type: sendpulse.subscriber_added, params: {{mailing_list_id: 1}}}}
    actions:
      - {{type: webhook, url: "http://127.0.0.1:8526/hooks/demo", secret: {WHSEC}}}
      - {{type: webhook, url: "{slack}", secret: {WHSEC}}}
      - {{type: webhook, url: "https://user:pa55word@example.org/hook", secret: {WHSEC}}}
""",
        CATALOG,
        "flows.yaml",
        {},
    )
    out = io.StringIO()
    connector_logging.configure(level="INFO", fmt="json", stream=out)
    log = structlog.get_logger("t")
    log.info("demo_receiver_started", url="http://127.0.0.1:8526/hooks/demo")
    log.info("delivery_failed", detail=f"POST {slack} → 500")
    log.info("delivery_failed", detail="POST https://user:pa55word@example.org/hook → 500")
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["url"] == "http://127.0.0.1:8526/hooks/demo"
    assert "abcdefghijklmnopqrstuvwx" not in second["detail"]
    assert "pa55word" not in third["detail"]


def test_poll_progress_is_logged_every_n_pages() -> None:
    with structlog.testing.capture_logs() as logs:
        run = progress.PollProgress(flow="big", trigger="t", worker="w", every=10)
        for page in range(1, 36):
            run.advance(page, page * 100)
    lines = [line for line in logs if line["event"] == "poll_progress"]
    assert [line["pages"] for line in lines] == [10, 20, 30]
    assert [line["items"] for line in lines] == [1000, 2000, 3000]
    assert all(line["flow"] == "big" and line["items_per_s"] > 0 for line in lines)


def test_polls_in_progress_are_listed_until_they_end() -> None:
    run = progress.begin("listed", "t", "w")
    run.advance(3, 250)
    assert progress.active()["listed"].items == 250
    progress.end(run)
    assert "listed" not in progress.active()
