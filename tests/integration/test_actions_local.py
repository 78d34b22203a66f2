"""The local actions through the dispatcher: append_jsonl (a file) and log (a line)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import asyncpg
from structlog.testing import capture_logs

from connector.dispatch import Dispatcher
from tests.integration.dispatch_support import FakeClock, delivery, flow_file, insert_event

BOTH = ("append_jsonl", "log")


def jsonl_flow(path: Path, name: str = "files") -> str:
    return (
        f"- name: {name}\n"
        "  trigger: {type: sendpulse.subscriber_added, params: {mailing_list_id: 1}}\n"
        "  actions:\n"
        f"    - type: append_jsonl\n      path: {path}\n"
        "    - type: log\n      level: warning\n"
    )


async def test_append_jsonl_writes_one_line_per_delivery_and_log_logs(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    out = tmp_path / "deep" / "events.jsonl"
    config = flow_file(jsonl_flow(out))
    async with db_pool.acquire() as conn:
        first = await insert_event(
            conn, "files", "ev-1", {"email": "a@b.c", "variables": {}}, actions=BOTH
        )
        second = await insert_event(conn, "files", "ev-2", {"email": "ü@b.c"}, actions=BOTH)
    with capture_logs() as logs:
        worker = Dispatcher(db_pool, config, http=None, clock=FakeClock(), worker_id="w")
        assert await worker.run_once() == 4
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(line["event_id"] for line in lines) == ["ev-1", "ev-2"]
    by_event = {line["event_id"]: line for line in lines}
    assert by_event["ev-1"]["delivery_id"] == str(first[0])
    assert by_event["ev-2"]["data"] == {"email": "ü@b.c"}
    assert by_event["ev-2"]["type"] == "sendpulse.subscriber_added"
    logged = [e for e in logs if e["event"] == "event_logged"]
    assert sorted(e["event_id"] for e in logged) == ["ev-1", "ev-2"]
    assert all(e["log_level"] == "warning" for e in logged)
    assert {e["delivery_id"] for e in logged} == {str(first[1]), str(second[1])}
    delivered = [e for e in logs if e["event"] == "trigger_delivered"]
    assert {e["summary"] for e in delivered} >= {
        "appended a@b.c to events.jsonl",
        "logged ü@b.c",
    }


async def test_append_jsonl_to_a_directory_is_fatal(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    config = flow_file(jsonl_flow(tmp_path))
    async with db_pool.acquire() as conn:
        [did, _] = await insert_event(conn, "files", "ev-1", {"email": "a@b.c"}, actions=BOTH)
    await Dispatcher(db_pool, config, http=None, clock=FakeClock()).run_once()
    async with db_pool.acquire() as conn:
        row = await delivery(conn, did)
    assert row["state"] == "dead" and "cannot append" in row["last_error"]


async def test_append_jsonl_makes_files_only_its_user_can_read(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    out = tmp_path / "events.jsonl"
    config = flow_file(jsonl_flow(out))
    async with db_pool.acquire() as conn:
        [did, _] = await insert_event(conn, "files", "ev-1", {"email": "a@b.c"}, actions=BOTH)
    old = os.umask(0o022)
    try:
        await Dispatcher(db_pool, config, http=None, clock=FakeClock()).run_once()
    finally:
        os.umask(old)
    async with db_pool.acquire() as conn:
        assert (await delivery(conn, did))["state"] == "delivered"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


async def test_append_jsonl_refuses_a_symlink_planted_at_its_path(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("untouched\n")
    out = tmp_path / "events.jsonl"
    out.symlink_to(target)
    config = flow_file(jsonl_flow(out))
    async with db_pool.acquire() as conn:
        [did, _] = await insert_event(conn, "files", "ev-1", {"email": "a@b.c"}, actions=BOTH)
    await Dispatcher(db_pool, config, http=None, clock=FakeClock()).run_once()
    async with db_pool.acquire() as conn:
        row = await delivery(conn, did)
    assert row["state"] == "dead" and "symbolic link" in row["last_error"]
    assert target.read_text() == "untouched\n"
