"""A long poll reports its pages and items while it runs: poll_progress lines, the page."""

from __future__ import annotations

import asyncpg
import pytest
from structlog.testing import capture_logs

from connector import progress
from tests.integration.test_triggers import harness


async def test_a_paged_baseline_logs_progress_every_n_pages(
    db_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONNECTOR_PROGRESS_PAGES", "2")
    seen: list[tuple[str, int, int, bool]] = []

    def listener(poll: progress.PollProgress, finished: bool) -> None:
        seen.append((poll.flow, poll.pages, poll.items, finished))

    progress.add_listener(listener)
    try:
        async with harness(db_pool) as h:
            book = h.state.add_book("Big")
            for n in range(450):
                h.state.add_subscriber(book.id, f"user{n:04d}@example.com", webhook=False)
            flow, params = h.flow("sendpulse.subscriber_added", {"mailing_list_id": book.id})
            with capture_logs() as logs:
                result = await h.poll(flow, params)
    finally:
        progress.remove_listener(listener)
    assert result.status == "ok" and result.items_seen == 450
    lines = [line for line in logs if line["event"] == "poll_progress"]
    pages = [line["pages"] for line in lines]
    # The list comes in pages, one request each: a line every second page.
    assert len(lines) >= 2
    assert pages == list(range(2, result.requests + 1, 2)), (pages, result.requests)
    assert all(line["flow"] == flow.name and line["items"] > 0 for line in lines)
    assert [line["items"] for line in lines] == sorted(line["items"] for line in lines)
    assert seen[-1] == (flow.name, result.requests, 450, True)
    assert flow.name not in progress.active()
