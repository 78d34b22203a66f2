"""The delivery-log commands as a real process against a real database."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tests.e2e.conftest import cli_env, run_cli

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


async def cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(DATABASE_URL=dsn, COLUMNS="250")
    return await asyncio.to_thread(run_cli, *args, env=env)


async def seed(dsn: str) -> dict[str, uuid.UUID]:
    now = datetime.now(UTC)
    ids = {name: uuid.uuid4() for name in ("dead", "delivered", "pending", "old_dead")}
    conn = await asyncpg.connect(dsn)
    try:
        for name, event, state, attempt, created in [
            ("dead", "ev-dead", "dead", 8, now - timedelta(minutes=5)),
            ("delivered", "ev-ok", "delivered", 1, now - timedelta(minutes=4)),
            ("pending", "ev-wait", "pending", 2, now - timedelta(minutes=3)),
            ("old_dead", "ev-old", "dead", 8, now - timedelta(days=3)),
        ]:
            await conn.execute(
                "INSERT INTO events (id, flow_name, trigger_type, item_key, payload, created_at)"
                " VALUES ($1, 'hooks', 'sendpulse.subscriber_added', $2, $3::jsonb, $4)",
                event,
                f"{name}@example.com",
                json.dumps({"email": f"{name}@example.com", "variables": {"n": 1}}),
                created,
            )
            await conn.execute(
                "INSERT INTO deliveries (id, event_id, flow_name, action_index, action_type,"
                " state, attempt, created_at, updated_at, summary, last_error, delivered_at)"
                " VALUES ($1, $2, 'hooks', 0, 'webhook', $3, $4, $5, $5, $6, $7, $8)",
                ids[name],
                event,
                state,
                attempt,
                created,
                "POST https://example.com → 200" if state == "delivered" else None,
                "POST https://example.com → 503" if state != "delivered" else None,
                created if state == "delivered" else None,
            )
        for n in (1, 2):
            await conn.execute(
                "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms,"
                " outcome, status_code, detail) VALUES ($1, $2, $3, 12, $4, 503, 'down')",
                ids["dead"],
                n,
                now - timedelta(minutes=5 - n),
                "retry" if n == 1 else "dead",
            )
    finally:
        await conn.close()
    return ids


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def test_deliveries_filters_and_formats(database: str) -> None:
    ids = await seed(database)
    everything = await cli(database, "deliveries", "--json")
    assert everything.returncode == 0, everything.stderr
    rows = lines(everything.stdout)
    assert [r["event_id"] for r in rows] == ["ev-wait", "ev-ok", "ev-dead", "ev-old"]
    dead = lines((await cli(database, "deliveries", "--status", "dead", "--json")).stdout)
    assert {r["id"] for r in dead} == {str(ids["dead"]), str(ids["old_dead"])}
    recent_dead = await cli(database, "deliveries", "--status", "dead", "--since", "1h", "--json")
    assert [r["id"] for r in lines(recent_dead.stdout)] == [str(ids["dead"])]
    by_event = lines((await cli(database, "deliveries", "--event", "ev-ok", "--json")).stdout)
    assert [(r["state"], r["attempt"], r["item_key"]) for r in by_event] == [
        ("delivered", 1, "delivered@example.com")
    ]
    assert lines((await cli(database, "deliveries", "--flow", "other", "--json")).stdout) == []
    table = await cli(database, "deliveries", "--flow", "hooks")
    assert table.returncode == 0 and "dead@example.com" in table.stdout
    bad = await cli(database, "deliveries", "--status", "lost")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    bad_since = await cli(database, "deliveries", "--since", "yesterday")
    assert bad_since.returncode == 2 and "--since" in bad_since.stderr


async def test_a_piped_table_is_not_cut_and_its_event_ids_are_taken_back(database: str) -> None:
    event, delivery = "762ac0de" * 8, uuid.uuid4()
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            "INSERT INTO events (id, flow_name, trigger_type, item_key, payload)"
            " VALUES ($1, 'hooks', 'sendpulse.subscriber_added', 'a-long-address@example.com',"
            " '{}'::jsonb)",
            event,
        )
        await conn.execute(
            "INSERT INTO deliveries (id, event_id, flow_name, action_index, action_type, state,"
            " last_error) VALUES ($1, $2, 'hooks', 0, 'webhook', 'dead', $3)",
            delivery,
            event,
            "POST https://example.com/a/rather/long/path/for/a/receiver → 503 " * 3,
        )
    finally:
        await conn.close()
    env = cli_env(DATABASE_URL=database, COLUMNS="80")
    table = await asyncio.to_thread(run_cli, "deliveries", "--status", "dead", env=env)
    assert table.returncode == 0, table.stderr
    assert str(delivery) in table.stdout and "…" not in table.stdout
    shown_prefix = event[:16]
    assert shown_prefix in table.stdout
    shown = await asyncio.to_thread(run_cli, "events", "show", shown_prefix, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == event


async def test_events_show_lists_every_attempt(database: str) -> None:
    ids = await seed(database)
    shown = await cli(database, "events", "show", "ev-dead", "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["payload"] == {"email": "dead@example.com", "variables": {"n": 1}}
    [delivery] = doc["deliveries"]
    assert delivery["id"] == str(ids["dead"]) and delivery["state"] == "dead"
    assert [(a["attempt"], a["outcome"]) for a in delivery["attempts"]] == [
        (1, "retry"),
        (2, "dead"),
    ]
    table = await cli(database, "events", "show", "ev-dead")
    assert table.returncode == 0 and "down" in table.stdout and "dead@example.com" in table.stdout
    missing = await cli(database, "events", "show", "ev-nope")
    assert missing.returncode == 1 and "no event ev-nope" in missing.stderr


async def test_replay_puts_dead_back_with_the_same_id_and_never_delivered(database: str) -> None:
    ids = await seed(database)
    refused = await cli(database, "replay", "--delivery", str(ids["delivered"]))
    assert refused.returncode == 2 and "already delivered" in refused.stderr
    not_dead = await cli(database, "replay", "--delivery", str(ids["pending"]))
    assert not_dead.returncode == 2 and "only dead ones replay" in not_dead.stderr
    garbage = await cli(database, "replay", "--delivery", "nope")
    assert garbage.returncode == 2 and "not a delivery id" in garbage.stderr
    one = await cli(database, "replay", "--delivery", str(ids["dead"]))
    assert one.returncode == 0 and f"replayed {ids['dead']}" in one.stdout
    recent = await cli(database, "replay", "--flow", "hooks", "--status", "dead", "--since", "1h")
    assert "nothing to replay" in recent.stdout
    rest = await cli(database, "replay", "--flow", "hooks")
    assert f"replayed {ids['old_dead']}" in rest.stdout
    usage = await cli(database, "replay")
    assert usage.returncode == 2
    conn = await asyncpg.connect(database)
    try:
        rows = {
            r["id"]: r
            for r in await conn.fetch("SELECT id, state, attempt, schedule_offset FROM deliveries")
        }
    finally:
        await conn.close()
    assert rows[ids["dead"]]["state"] == "pending"
    assert rows[ids["dead"]]["schedule_offset"] == 8  # a fresh schedule, attempts keep counting
    assert rows[ids["old_dead"]]["state"] == "pending"
    assert rows[ids["delivered"]]["state"] == "delivered"


def sign(msg_id: str, ts: int, body: bytes) -> str:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_verify_webhook_and_secret(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b'{"type":"x","data":{"email":"a@b.c"}}')
    ts = int(datetime.now(UTC).timestamp())
    headers = [
        "-H",
        "webhook-id: d-1",
        "-H",
        f"webhook-timestamp: {ts}",
        "-H",
        f"webhook-signature: {sign('d-1', ts, body.read_bytes())}",
    ]
    ok = run_cli("verify-webhook", "--secret", SECRET, "--body", str(body), *headers)
    assert ok.returncode == 0 and "valid: webhook-id d-1" in ok.stdout, ok.stderr
    body.write_bytes(body.read_bytes() + b" ")
    bad = run_cli("verify-webhook", "--secret", SECRET, "--body", str(body), *headers)
    assert bad.returncode == 1 and "invalid: no signature matches" in bad.stdout
    no_secret = run_cli("verify-webhook", "--body", str(body), *headers)
    assert no_secret.returncode == 2
    # Captured ten minutes ago: too old for the default window, and the answer says why.
    body.write_bytes(body.read_bytes()[:-1])
    later = str(ts + 600)
    stale = run_cli(
        "verify-webhook", "--secret", SECRET, "--body", str(body), *headers, "--now", later
    )
    assert stale.returncode == 1 and "widen it with --tolerance" in stale.stdout
    wide = ["--now", later, "--tolerance", "900"]
    widened = run_cli("verify-webhook", "--secret", SECRET, "--body", str(body), *headers, *wide)
    assert widened.returncode == 0, widened.stdout
    made = run_cli("secret", "webhook")
    assert made.returncode == 0
    secret = made.stdout.strip()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert run_cli("secret", "webhook").stdout.strip() != secret


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


async def test_a_since_before_the_year_1_is_a_usage_error(database: str) -> None:
    for command in (["deliveries"], ["replay", "--flow", "hooks"]):
        line = one_line_error(await cli(database, *command, "--since", "99999999d"))
        assert "--since '99999999d'" in line
    line = one_line_error(await cli(database, "deliveries", "--since", "99999999999999999d"))
    assert "--since" in line


async def test_a_missing_database_points_to_db_migrate(database: str) -> None:
    parts = urlsplit(database)
    missing = urlunsplit(parts._replace(path=f"/nope_{uuid.uuid4().hex[:12]}"))
    line = one_line_error(await cli(missing, "deliveries"))
    assert line == "error: the database does not exist yet; run: connector db migrate"
    assert one_line_error(await cli(missing, "events", "show", "ev-1")) == line


def test_deliveries_on_a_fresh_embedded_home_makes_the_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(CONNECTOR_HOME=str(home))
    try:
        listed = run_cli("deliveries", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout == ""
        table = run_cli("deliveries", env=env)
        assert table.returncode == 0, table.stderr
        assert "0 shown" in table.stdout
    finally:
        # As root the cluster may live outside tmp_path (cluster_folder.reachable): clean it too.
        shutil.rmtree((home / "postgres").resolve(), ignore_errors=True)


async def test_subscriber_text_is_shown_literally_never_as_markup(database: str) -> None:
    conn = await asyncpg.connect(database)
    keys = {"ev-close": "evil[/red]@x.org", "ev-link": "[link=https://evil.example]a[/link]@y.org"}
    try:
        for event, key in keys.items():
            await conn.execute(
                "INSERT INTO events (id, flow_name, trigger_type, item_key, payload)"
                " VALUES ($1, 'hooks', 'sendpulse.subscriber_added', $2, '{}')",
                event,
                key,
            )
            delivery = uuid.uuid4()
            await conn.execute(
                "INSERT INTO deliveries (id, event_id, flow_name, action_index, action_type,"
                " state, last_error) VALUES ($1, $2, 'hooks', 0, 'webhook', 'dead', $3)",
                delivery,
                event,
                f"[bold]{key}",
            )
            await conn.execute(
                "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms,"
                " outcome, status_code, detail) VALUES ($1, 1, now(), 5, 'dead', 500, $2)",
                delivery,
                f"[/]{key}",
            )
    finally:
        await conn.close()
    table = await cli(database, "deliveries")
    assert table.returncode == 0, table.stderr
    for key in keys.values():
        assert key in table.stdout
        assert f"[bold]{key}" in table.stdout
    for event, key in keys.items():
        shown = await cli(database, "events", "show", event)
        assert shown.returncode == 0, shown.stderr
        assert key in shown.stdout and f"[/]{key}" in shown.stdout
