"""``connector check --live`` against ``connector sandbox``: every row ok, nothing written."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Daemon, cli_env, free_port, run_cli


def _wait_healthy(port: int, daemon: Daemon, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1):
                return
        except OSError:
            if daemon.proc.poll() is not None:
                break
            time.sleep(0.1)
    raise AssertionError(f"the sandbox did not start:\n{daemon.output()}")


@pytest.fixture
def sandbox_port(tmp_path: Path, daemons: list[Daemon]) -> int:
    port = free_port()
    args = ["sandbox", "--port", str(port), "--seed", "demo"]
    daemon = Daemon(args, cli_env(), tmp_path / "sandbox.log")
    daemons.append(daemon)
    _wait_healthy(port, daemon)
    return port


def test_live_check_of_the_demo_flows_is_all_ok(sandbox_port: int, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(SENDPULSE_BASE_URL=f"http://127.0.0.1:{sandbox_port}", CONNECTOR_HOME=str(home))
    result = run_cli("check", "--live", "config/demo.yaml", env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for line in (
        "(demo)",
        "ok: issued, expires in 3600 s; scopes: none stated",
        "mailing_list_id 1",
        "GET /addressbooks/1/emails",
        "GET /campaigns",
        "POST /crm/v1/deals/get-list",
        "all 7 checks ok",
    ):
        assert line in out, out
    # Read only: no database, no state folder, no event file.
    assert not home.exists()


def test_live_check_names_the_difference(sandbox_port: int, tmp_path: Path) -> None:
    flows = tmp_path / "flows.yaml"
    text = (ROOT / "config" / "demo.yaml").read_text()
    flows.write_text(
        text.replace("params: {mailing_list_id: 1}", "params: {mailing_list_id: 99}", 1)
    )
    env = cli_env(SENDPULSE_BASE_URL=f"http://127.0.0.1:{sandbox_port}")
    result = run_cli("check", "--live", str(flows), env=env, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "mailing_list_id 99" in result.stdout
    assert "checks differ from the contract" in result.stdout
