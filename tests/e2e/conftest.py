"""Helpers to run the CLI as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.db.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[2]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CONNECTOR_HOME")}
    # A free admin port each time: tests run side by side, and 8081 may be anyone's.
    env.update({"LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1", "ADMIN_PORT": "0"})
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        cwd=ROOT,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Daemon:
    """A ``connector run`` process whose stderr (the JSON log) is collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connector", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} did not appear; log:\n{self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.stop()


# -- helpers for tests that run workers beside an in-process sandbox and receiver ----------
# (the test's event loop serves those, so waiting must be async: never block it)

SECRET_KEY = "x3yXV8nP2m1c0bq6m7i0YxM6kYQw5bK0nY3Q2zW9r8s="


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_records(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of a process's output (other lines skipped)."""
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
    return records


async def eventually(
    check: Callable[[], Any], what: str, within: float = 30.0, interval: float = 0.1
) -> Any:
    """Wait (at most ``within`` s) until ``check()`` (sync or async) is truthy; return it."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_exit(proc: subprocess.Popen[str], within: float) -> int | None:
    """The exit code, or None if the process still runs after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        code = proc.poll()
        if code is not None or time.monotonic() > deadline:
            return code
        await asyncio.sleep(0.05)


def write_flows(
    path: Path,
    sb: Any,
    url: str,
    flows: dict[str, tuple[str, int]],
    *,
    secret: str,
    start: str = "now",
    flow_options: dict[str, Any] | None = None,
    action_options: dict[str, Any] | None = None,
) -> Path:
    """A flow file: ``flows`` maps a flow name to (connection, mailing list id).

    Each connection gets its own sandbox client; each flow a ``subscriber_added`` trigger and
    one signed webhook to ``url``. ``start: all`` makes a flow's first poll deliver the
    subscribers already there, so a test need not wait a whole interval for its second poll.
    """
    connections = sorted({connection for connection, _ in flows.values()})
    for connection in connections:
        sb.add_client(f"client-{connection}", f"secret-{connection}")
    document = {
        "connections": {
            c: {
                "client_id": f"client-{c}",
                "client_secret": f"secret-{c}",
                "base_url": sb.base_url,
                "rate_limit": "5/s",
            }
            for c in connections
        },
        "egress": {"allow_networks": ["127.0.0.0/8"]},
        "flows": [
            {
                "name": name,
                "trigger": {
                    "type": "sendpulse.subscriber_added",
                    "connection": connection,
                    "params": {"mailing_list_id": list_id},
                },
                "every": "10s",
                "start": start,
                **(flow_options or {}),
                "actions": [
                    {"type": "webhook", "url": url, "secret": secret, **(action_options or {})}
                ],
            }
            for name, (connection, list_id) in flows.items()
        ],
    }
    path.write_text(json.dumps(document, indent=2))
    return path


@pytest.fixture
def private_postgres() -> Iterator[EmbeddedPostgres]:
    """A cluster of this test's own, so stopping or restarting it disturbs no other test."""
    # A short path: the server's unix socket path has a length limit.
    root = Path(tempfile.mkdtemp(prefix="pgp-"))
    root.chmod(0o755)
    server = EmbeddedPostgres(root / "pg")
    server.start()
    try:
        yield server
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(server.root, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
