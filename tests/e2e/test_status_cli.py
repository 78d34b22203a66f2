"""`connector status` and the admin listener's start-up rules, as a real process."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import asyncpg

from tests.e2e.conftest import cli_env, run_cli

FLOWS = """\
connections:
  main: {client_id: id, client_secret: status-cli-secret-value}
egress: {allow_networks: [127.0.0.0/8]}
flows:
  - name: fine
    trigger: {type: sendpulse.subscriber_added, params: {mailing_list_id: 1}}
    actions: [{type: log}]
  - name: broken
    trigger: {type: sendpulse.subscriber_added, params: {mailing_list_id: 999}}
    actions: [{type: log}]
"""
ERROR = "FatalError: SendPulse answered 400: Book not found"


async def status(dsn: str, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(DATABASE_URL=dsn, COLUMNS="250")
    return await asyncio.to_thread(run_cli, "status", "--config", str(config), *args, env=env)


async def execute(dsn: str, sql: str, *args: object) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def test_status_exits_1_while_a_flow_fails_and_0_once_it_recovers(
    database: str, tmp_path: Path
) -> None:
    config = tmp_path / "flows.yaml"
    config.write_text(FLOWS)
    await execute(
        database,
        "INSERT INTO flow_states (flow_name, connection_id, trigger_type, state_key,"
        " last_error) VALUES ('broken', 'main', 'sendpulse.subscriber_added', 'k', $1)",
        ERROR,
    )
    await execute(
        database,
        "INSERT INTO leases (resource, owner, expires_at) VALUES"
        " ('worker:w1', 'w1', now() + interval '1 minute'),"
        " ('own:main', 'w1', now() + interval '1 minute'),"
        " ('worker:gone', 'gone', now() - interval '1 minute')",
    )
    shown = await status(database, config, "--json")
    assert shown.returncode == 1, shown.stderr
    report = json.loads(shown.stdout)
    assert report["healthy"] is False
    assert {f["name"]: f["state"] for f in report["flows"]} == {"fine": "ok", "broken": "failing"}
    assert report["flows"][1]["error"] == ERROR
    assert report["workers"] == [{"worker": "w1", "connections": ["main"]}]
    assert "status-cli-secret-value" not in shown.stdout

    table = await status(database, config)
    assert table.returncode == 1
    assert "failing" in table.stdout and "Book not found" in table.stdout
    assert "w1" in table.stdout and "main" in table.stdout
    assert "gone" not in table.stdout

    await execute(database, "UPDATE flow_states SET last_error = NULL")
    again = await status(database, config, "--json")
    assert again.returncode == 0, again.stdout
    assert json.loads(again.stdout)["healthy"] is True


async def test_status_with_a_bad_flow_file_is_a_usage_error(database: str, tmp_path: Path) -> None:
    config = tmp_path / "flows.yaml"
    config.write_text("flows: [{name: x}]\n")
    shown = await status(database, config)
    assert shown.returncode == 2
    assert "'trigger' is required" in shown.stderr


def test_report_commands_keep_embedded_postgres_lines_out(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(CONNECTOR_HOME=str(home), LOG_FORMAT="console", COLUMNS="200")
    try:
        listed = run_cli("deliveries", env=env)
        assert listed.returncode == 0, listed.stderr
        assert "embedded_postgres_started" not in listed.stderr + listed.stdout
        shown = run_cli("status", "--config", "config/demo.yaml", "--json", env=env)
        assert shown.returncode == 0, shown.stderr
        assert "embedded_postgres_reused" not in shown.stderr + shown.stdout
        assert "embedded_postgres_started" not in shown.stderr + shown.stdout
        assert {f["state"] for f in json.loads(shown.stdout)["flows"]} == {"ok"}
        # At DEBUG an operator who asks for everything still gets it.
        debug = run_cli("--log-level", "DEBUG", "deliveries", env=env)
        assert "embedded_postgres_started" in debug.stderr
    finally:
        shutil.rmtree((home / "postgres").resolve(), ignore_errors=True)


def test_admin_listener_off_loopback_without_credentials_refuses_to_start() -> None:
    unreachable = "postgresql://nobody@127.0.0.1:1/x"
    result = run_cli(
        "run",
        "--config",
        "config/demo.yaml",
        "--admin-host",
        "0.0.0.0",  # noqa: S104 - refused before anything is bound
        env=cli_env(DATABASE_URL=unreachable),
    )
    assert result.returncode == 2, result.stderr
    assert "CONNECTOR_ADMIN_TOKEN" in result.stderr
    half = run_cli(
        "run",
        "--config",
        "config/demo.yaml",
        env=cli_env(DATABASE_URL=unreachable, CONNECTOR_ADMIN_USER="ops"),
    )
    assert half.returncode == 2
    assert "CONNECTOR_ADMIN_PASSWORD" in half.stderr
    bad_port = run_cli(
        "run", "--config", "config/demo.yaml", env=cli_env(ADMIN_PORT="x", DATABASE_URL=unreachable)
    )
    assert bad_port.returncode == 2
    assert "ADMIN_PORT='x'" in bad_port.stderr


async def test_replay_wait_says_when_no_worker_sends_them(database: str) -> None:
    await execute(
        database,
        "INSERT INTO events (id, flow_name, trigger_type, item_key, payload)"
        " VALUES ('ev-1', 'hooks', 'sendpulse.subscriber_added', 'a@x.org', '{}')",
    )
    await execute(
        database,
        "INSERT INTO deliveries (id, event_id, flow_name, action_index, action_type, state)"
        " VALUES ('00000000-0000-0000-0000-00000000000a', 'ev-1', 'hooks', 0, 'webhook', 'dead')",
    )
    env = cli_env(DATABASE_URL=database)
    waited = await asyncio.to_thread(
        run_cli, "replay", "--flow", "hooks", "--wait", "--wait-timeout", "0", env=env
    )
    assert waited.returncode == 1, waited.stderr
    assert "replayed 00000000-0000-0000-0000-00000000000a" in waited.stdout
    assert "0 delivered, 0 dead again, 1 still waiting (is a worker running?)" in waited.stdout
