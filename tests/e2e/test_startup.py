"""A worker that cannot start says why at once, exits 1 and leaves nothing behind."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from connector.sandbox.harness import Sandbox
from tests.e2e.conftest import ROOT, SECRET_KEY, cli_env, log_records, wait_exit, write_flows

pytestmark = pytest.mark.slow


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process already listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _start(config: Path, database: str, tmp_path: Path, port: int) -> subprocess.Popen[str]:
    env = cli_env(
        DATABASE_URL=database,
        CONNECTOR_SECRET_KEY=SECRET_KEY,
        CONNECTOR_HOME=str(tmp_path / "home"),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "connector", "run", "--config", str(config), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def _finished(proc: subprocess.Popen[str]) -> tuple[int, list[dict[str, object]]]:
    code = await wait_exit(proc, within=60)
    if code is None:
        proc.kill()
        output = proc.communicate(timeout=10)[0]
        raise AssertionError(f"the worker did not exit on its own; output:\n{output}")
    output = proc.communicate(timeout=10)[0]
    return code, log_records(output)


async def test_a_taken_port_exits_1_with_one_line_naming_it_and_holds_no_lease(
    database: str, tmp_path: Path, sb: Sandbox, taken_port: int
) -> None:
    config = write_flows(
        tmp_path / "flows.yaml",
        sb,
        "http://127.0.0.1:9/hook",
        {"welcome": ("main", 1)},
        secret="whsec_" + "A" * 32,
    )
    code, records = await _finished(_start(config, database, tmp_path, taken_port))

    assert code == 1
    failures = [r for r in records if r.get("event") == "web_server_failed"]
    assert len(failures) == 1, records
    assert failures[0]["port"] == taken_port
    assert failures[0]["error"] == "address already in use"
    assert failures[0]["level"] == "error"
    events = [r.get("event") for r in records]
    assert "worker_started" not in events
    assert "database_unavailable" not in events
    conn = await asyncpg.connect(database)
    try:
        assert await conn.fetch("SELECT * FROM leases") == []
    finally:
        await conn.close()


async def test_a_database_migrated_by_a_newer_version_exits_1_naming_the_migration(
    database: str, tmp_path: Path, sb: Sandbox
) -> None:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) "
            "VALUES (9999, 'from_the_future', 'x')"
        )
    finally:
        await conn.close()
    config = write_flows(
        tmp_path / "flows.yaml",
        sb,
        "http://127.0.0.1:9/hook",
        {"welcome": ("main", 1)},
        secret="whsec_" + "A" * 32,
    )
    code, records = await _finished(_start(config, database, tmp_path, 0))

    assert code == 1
    failures = [r for r in records if r.get("event") == "database_newer_than_code"]
    assert len(failures) == 1, records
    assert failures[0]["migrations"] == ["9999"]
    assert "worker_started" not in [r.get("event") for r in records]
