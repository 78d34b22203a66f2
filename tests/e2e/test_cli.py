"""The CLI as a process: exit codes, check output, run and stop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import ROOT, Daemon, cli_env, run_cli

SECRET_KEY = "x3yXV8nP2m1c0bq6m7i0YxM6kYQw5bK0nY3Q2zW9r8s="
# Never reached: the commands under test must fail before they touch a database.
UNREACHABLE = "postgresql://connector@127.0.0.1:1/never"


def test_check_valid_demo_file_exits_0_and_lists_flows() -> None:
    result = run_cli("check", "config/demo.yaml")
    assert result.returncode == 0, result.stderr
    assert "demo-new-subscribers" in result.stdout
    assert "is valid" in result.stdout


def test_check_invalid_file_exits_2_with_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "connections:\n"
        "  main: {client_id: a, client_secret: b, rate_limit: fast}\n"
        "flows:\n"
        "  - name: one\n"
        "    trigger: {type: sendpulse.nothing, connection: main}\n"
        "    actions: [{type: log}]\n"
    )
    result = run_cli("check", str(bad))
    assert result.returncode == 2
    assert "2 problems found" in result.stderr
    assert f"{bad}:2:" in result.stderr
    assert "unknown trigger type 'sendpulse.nothing'" in result.stderr
    as_json = run_cli("check", "--json", str(bad))
    problems = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert as_json.returncode == 2
    assert {p["path"] for p in problems} == {"connections.main.rate_limit", "flows[0].trigger.type"}


APPS_FILE = """
apps:
  store:
    app_id: "42"
    secret: app-directory-secret
    scopes: [emails]
flows:
  - name: new-subscribers
    installs_of: store
    trigger: {type: sendpulse.subscriber_added, params: {mailing_list_id: 1}}
    actions: [{type: log}]
"""


def test_check_json_on_a_valid_file_prints_json_with_apps_and_per_install_flows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "apps.yaml"
    path.write_text(APPS_FILE)
    result = run_cli("check", "--json", str(path))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["valid"] is True
    assert [(a["name"], a["id"], a["scopes"]) for a in doc["apps"]] == [("store", "42", ["emails"])]
    [flow] = doc["flows"]
    assert (flow["name"], flow["installs_of"], flow["connection"]) == (
        "new-subscribers",
        "store",
        None,
    )
    table = run_cli("check", str(path))
    assert table.returncode == 0, table.stderr
    assert "Apps" in table.stdout and "every install of store" in table.stdout
    assert "1 apps, 1 flows" in table.stdout


def test_check_reports_an_unset_secret_once_and_a_duplicate_name_beside_other_problems(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "connections:\n"
        "  main: {client_id: a, client_secret: b}\n"
        "flows:\n"
        "  - name: one\n"
        "    every: 1s\n"
        "    trigger: {type: sendpulse.subscriber_added, params: {mailing_list_id: 1}}\n"
        "    actions: [{type: log}]\n"
        "  - name: one\n"
        "    trigger: {type: sendpulse.subscriber_added, params: {mailing_list_id: 1}}\n"
        "    actions:\n"
        "      - type: webhook\n"
        "        url: https://example.com/hook\n"
        "        secret: ${CHECK_TEST_UNSET_SECRET}\n"
        "extra: 1\n"
    )
    result = run_cli("check", "--json", str(path))
    assert result.returncode == 2
    problems = [json.loads(line) for line in result.stdout.splitlines()]
    by_path: dict[str, list[str]] = {}
    for problem in problems:
        by_path.setdefault(problem["path"], []).append(problem["message"])
    assert by_path["flows[1].actions[0].secret"] == [
        "environment variable CHECK_TEST_UNSET_SECRET is not set "
        "(set it, or write ${CHECK_TEST_UNSET_SECRET:-default})"
    ]
    assert by_path["flows[1].name"] == ["flow name 'one' is already used by flows[0]"]
    assert "flows[0].every" in by_path and "extra" in by_path


def test_check_missing_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("check", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "file not found" in result.stderr


def test_no_command_prints_help_and_exits_2() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert "usage: connector" in result.stdout


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("connector ")


def test_schema_is_json_with_flows() -> None:
    result = run_cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert "flows" in schema["properties"]


def test_run_migrates_then_exits_0_on_sigterm(database: str, tmp_path: Path) -> None:
    daemon = Daemon(
        ["run", "--config", "config/demo.yaml"],
        cli_env(DATABASE_URL=database, CONNECTOR_SECRET_KEY=SECRET_KEY, PORT="0"),
        tmp_path / "run.log",
    )
    try:
        daemon.wait_for('"worker_started"')
        daemon.proc.send_signal(signal.SIGTERM)
        # Well inside the 30 s drain: with nothing in flight it has nothing to wait for.
        code = daemon.proc.wait(timeout=25)
    finally:
        daemon.stop()
    assert code == 0
    events = [
        json.loads(line)["event"] for line in daemon.output().splitlines() if line.startswith("{")
    ]
    assert "database_ready" in events
    assert events[-1] == "worker_stopped"
    # Nothing was left to cancel: the shutdown did not run into the drain's deadline.
    assert "polls_cancelled_at_shutdown" not in events
    assert "deliveries_cancelled_at_shutdown" not in events
    status = run_cli("db", "status", env=cli_env(DATABASE_URL=database))
    assert status.returncode == 0
    assert "pending" not in status.stdout
    assert "0001" in status.stdout


def test_run_with_invalid_config_exits_2_before_touching_the_database(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("flows: [{name: x}]\n")
    result = run_cli(
        "run", "--config", str(bad), env=cli_env(DATABASE_URL="postgresql://nobody@127.0.0.1:1/x")
    )
    assert result.returncode == 2
    assert "'trigger' is required" in result.stderr


def test_bad_database_url_is_a_clear_error() -> None:
    result = run_cli("db", "status", env=cli_env(DATABASE_URL="mysql://x"))
    assert result.returncode == 2
    assert "DATABASE_URL must start with postgresql://" in result.stderr


def test_embedded_database_is_shared_and_survives_restarts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(CONNECTOR_HOME=str(home), PORT="0")
    first = Daemon(["run", "--config", "config/demo.yaml"], env, tmp_path / "first.log")
    try:
        first.wait_for('"worker_started"')
        assert '"embedded_postgres_started"' in first.output()
        # A second process on the same folder reuses the running server and leaves it running.
        status = run_cli("db", "status", env=env)
        assert status.returncode == 0, status.stderr
        assert "pending" not in status.stdout
        assert (home / "postgres" / "data" / "postmaster.pid").exists()
        first.proc.send_signal(signal.SIGINT)
        assert first.proc.wait(timeout=30) == 0
    finally:
        first.stop()
    # The process that started the server stopped it on exit.
    assert not (home / "postgres" / "data" / "postmaster.pid").exists()
    again = run_cli("db", "migrate", env=env)
    assert again.returncode == 0, again.stderr
    assert "nothing to apply" in again.stdout
    # As root the cluster may live outside tmp_path (cluster_folder.reachable): clean it too.
    shutil.rmtree((home / "postgres").resolve(), ignore_errors=True)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line a bad-usage exit leaves on stderr (no traceback)."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_a_bad_port_breaks_only_the_commands_that_listen() -> None:
    env = cli_env(PORT="abc")
    assert run_cli("check", "config/demo.yaml", env=env).returncode == 0
    assert run_cli("schema", env=env).returncode == 0
    line = one_line_error(
        run_cli(
            "run", "--config", "config/demo.yaml", env=cli_env(PORT="abc", DATABASE_URL=UNREACHABLE)
        )
    )
    assert line == "error: PORT='abc' is not a port number (0 to 65535)"
    line = one_line_error(
        run_cli(
            "run",
            "--config",
            "config/demo.yaml",
            env=cli_env(PORT="70000", DATABASE_URL=UNREACHABLE),
        )
    )
    assert "PORT='70000'" in line
    flag = run_cli("run", "--config", "config/demo.yaml", "--port", "x", env=env)
    assert flag.returncode == 2 and "'x' is not a port number" in flag.stderr


def test_verify_webhook_with_a_missing_body_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = run_cli(
        "verify-webhook",
        "--secret",
        "whsec_" + "QUJD" * 8,
        "-H",
        "webhook-id: msg_1",
        "--body",
        str(missing),
    )
    line = one_line_error(result)
    assert str(missing) in line and "No such file or directory" in line


def test_a_reader_that_leaves_early_ends_the_output_quietly() -> None:
    # The read end is closed before the command writes a byte: every write meets EPIPE.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        for args in (["schema"], ["check", "--json", "config/demo.yaml"]):
            result = subprocess.run(
                [sys.executable, "-m", "connector", *args],
                cwd=ROOT,
                env=cli_env(),
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            assert result.stderr == "", result.stderr
    finally:
        os.close(write_end)


def test_demo_on_a_taken_sandbox_port_prints_one_line_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "demo",
            "--no-web",
            "--sandbox-port",
            str(port),
            env=cli_env(CONNECTOR_HOME=str(tmp_path / "home")),
        )
    line = one_line_error(result)
    assert f"127.0.0.1:{port}" in line and "--sandbox-port" in line


def test_db_stop_and_clean_manage_the_embedded_cluster_of_the_home(tmp_path: Path) -> None:
    from connector.db.embedded import EmbeddedPostgres

    home = tmp_path / "home"
    server = EmbeddedPostgres(home / "postgres")
    server.start(watchdog=False)
    pid = server.running_pid()
    assert pid is not None
    env = cli_env(CONNECTOR_HOME=str(home))
    stopped = run_cli("db", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.startswith("stopped the embedded database in ")
    assert server.running_pid() is None
    assert run_cli("db", "stop", env=env).stdout.strip() == "it was not running"
    refused = run_cli("db", "clean", env=env)
    assert refused.returncode == 2 and "add --yes" in refused.stdout
    assert (server.data_dir / "PG_VERSION").exists()
    cleaned = run_cli("db", "clean", "--yes", env=env)
    assert cleaned.returncode == 0, cleaned.stderr
    assert not server.root.exists() and not (home / "postgres").is_symlink()
    assert not server.password_file.exists()
    assert f"removed {server.root}" in cleaned.stdout
    elsewhere = run_cli(
        "db", "stop", env=cli_env(CONNECTOR_HOME=str(home), DATABASE_URL=UNREACHABLE)
    )
    assert one_line_error(elsewhere).startswith("error: db stop manages the embedded database only")
