"""`make run`'s command as a process: every demo flow delivers, Ctrl-C stops it cleanly."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

from tests.e2e.conftest import Daemon, cli_env, free_port

FLOWS = {"demo-new-subscribers", "demo-unsubscribes", "demo-campaign-status", "demo-deal-stages"}


def delivered_flows(output: str) -> dict[str, set[str]]:
    by_flow: dict[str, set[str]] = {}
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("event") == "trigger_delivered":
            by_flow.setdefault(record["flow"], set()).add(record["action"])
    return by_flow


def test_demo_delivers_every_flow_then_stops_on_sigint(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    home = tmp_path / "home"
    sandbox, receiver = free_port(), free_port()
    demo = Daemon(
        [
            "demo",
            "--port",
            "0",
            "--sandbox-port",
            str(sandbox),
            "--receiver-port",
            str(receiver),
            "--rate",
            "4",
        ],
        cli_env(CONNECTOR_HOME=str(home)),
        tmp_path / "demo.log",
    )
    daemons.append(demo)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        got = delivered_flows(demo.output())
        if set(got) == FLOWS and all(a == {"webhook", "append_jsonl"} for a in got.values()):
            break
        assert demo.proc.poll() is None, demo.output()
        time.sleep(0.5)
    got = delivered_flows(demo.output())
    assert set(got) == FLOWS, got
    assert '"demo_webhook_received"' in demo.output()
    assert '"demo_webhook_rejected"' not in demo.output()
    lines = (home / "demo-events.jsonl").read_text().splitlines()
    assert {json.loads(line)["flow"] for line in lines} == FLOWS
    demo.proc.send_signal(signal.SIGINT)
    assert demo.proc.wait(timeout=40) == 0, demo.output()
    assert '"demo_finished"' in demo.output()
    # The embedded Postgres the demo started is stopped with it.
    assert not (home / "postgres" / "data" / "postmaster.pid").exists()
    shutil.rmtree((home / "postgres").resolve(), ignore_errors=True)
