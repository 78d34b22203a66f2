"""What the project ships: every flow file under config/, every README example, the Procfile.

Each ``${VAR}`` a shipped file names is set to a valid sample value, so a file that fails
here fails for every operator who copies it.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.catalog import CATALOG
from connector.config import parse
from connector.sandbox.harness import Sandbox
from connector.yamlsource import FLOW_MAPPING_HINT
from tests.e2e.conftest import (
    ROOT,
    SECRET_KEY,
    cli_env,
    eventually,
    log_records,
    run_cli,
    wait_exit,
)

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
HOOK_SECRET = "whsec_uxkMY501HVvioPEQ1a3/VM8YXAOaufbGO7jOWHpdRzo="
# A valid value for every variable a shipped file or README example names.
SAMPLES = {
    "SENDPULSE_CLIENT_ID": "sample-client-id",
    "SENDPULSE_CLIENT_SECRET": "sample-client-secret",
    "SENDPULSE_API_KEY": "sample-api-key",
    "SENDPULSE_BASE_URL": "https://api.sendpulse.com",
    "SENDPULSE_LIST_ID": "5",
    "SENDPULSE_WEBHOOK_TOKEN": "sample-webhook-token-0123456789",
    "SENDPULSE_APP_ID": "12345",
    "SENDPULSE_APP_SECRET": "sample-app-secret",
    "MAILIUM_CLIENT_ID": "sample-mailium-client",
    "MAILIUM_CLIENT_SECRET": "sample-mailium-secret",
    "WELCOME_HOOK_URL": "https://example.com/hooks/welcome",
    "WELCOME_HOOK_SECRET": HOOK_SECRET,
    "DEMO_WEBHOOK_URL": "https://example.com/hooks/demo",
    "DEMO_WEBHOOK_SECRET": HOOK_SECRET,
    "CONNECTOR_HOME": "/var/lib/connector",
}
CONFIG_FILES = sorted(
    path.relative_to(ROOT)
    for path in (ROOT / "config").rglob("*")
    if path.suffix in (".yaml", ".yml")
)


def samples_for(text: str) -> dict[str, str]:
    names = set(VARIABLE.findall(text))
    unknown = sorted(names - set(SAMPLES))
    assert not unknown, f"add a valid sample value to SAMPLES for {', '.join(unknown)}"
    return {name: SAMPLES[name] for name in names}


def test_config_holds_the_files_the_readme_and_procfile_name() -> None:
    assert Path("config/flows.yaml") in CONFIG_FILES
    assert Path("config/demo.yaml") in CONFIG_FILES


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[str(p) for p in CONFIG_FILES])
def test_every_shipped_flow_file_passes_connector_check(path: Path) -> None:
    text = (ROOT / path).read_text()
    samples = samples_for(text)
    result = run_cli("check", str(path), env=cli_env(**samples))
    assert result.returncode == 0, result.stderr
    assert f"{path} is valid" in result.stdout
    for name in yaml.safe_load(text)["flows"]:
        assert name["name"] in result.stdout


def test_the_production_file_needs_its_variables_and_names_each_one_missing() -> None:
    result = run_cli("check", "config/flows.yaml", env=cli_env())
    assert result.returncode == 2
    for name in ("SENDPULSE_CLIENT_ID", "SENDPULSE_LIST_ID", "WELCOME_HOOK_SECRET"):
        assert f"environment variable {name} is not set" in result.stderr
    assert "YAML syntax" not in result.stderr


def test_a_variable_in_a_flow_mapping_gets_the_hint_from_connector_check(tmp_path: Path) -> None:
    # The line config/flows.yaml used to have, which no operator could load.
    flows = tmp_path / "flows.yaml"
    flows.write_text(
        "flows:\n"
        "  - name: welcome\n"
        "    trigger:\n"
        "      type: sendpulse.subscriber_added\n"
        "      params: {mailing_list_id: ${SENDPULSE_LIST_ID}}\n"
    )
    result = run_cli("check", str(flows), env=cli_env(SENDPULSE_LIST_ID="5"))
    assert result.returncode == 2
    assert (
        f"{flows}:5:34: YAML syntax: expected ',' or '}}', but got '{{'; {FLOW_MAPPING_HINT}"
        in result.stderr
    )


def test_connector_check_refuses_a_recursive_alias_without_a_traceback(tmp_path: Path) -> None:
    flows = tmp_path / "flows.yaml"
    flows.write_text("a: &a [*a]\n")
    result = run_cli("check", str(flows))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{flows}:1:8: YAML alias *a is not allowed in a flow file" in result.stderr


# -- the README's examples -----------------------------------------------------------------------

# A flow to put a README fragment that is only a list of actions into.
ACTIONS_HOST = """\
connections:
  main: {client_id: a, client_secret: b}
flows:
  - name: readme-example
    trigger:
      type: sendpulse.subscriber_added
      params: {mailing_list_id: 1}
"""
TOP_LEVEL = {"connections", "flows", "egress", "apps"}


def readme_examples() -> list[tuple[int, str]]:
    readme = (ROOT / "README.md").read_text()
    found = []
    for match in re.finditer(r"^```yaml\n(.*?)^```", readme, re.MULTILINE | re.DOTALL):
        found.append((readme.count("\n", 0, match.start()) + 2, match.group(1)))
    return found


EXAMPLES = readme_examples()


def test_the_readme_has_flow_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize(("line", "text"), EXAMPLES, ids=[f"README.md:{n}" for n, _ in EXAMPLES])
def test_every_readme_yaml_example_loads(line: int, text: str) -> None:
    keys = set(yaml.safe_load(text))
    if keys == {"actions"}:
        document = ACTIONS_HOST + "".join(f"    {row}\n" for row in text.splitlines())
    else:
        assert keys <= TOP_LEVEL, f"README.md:{line}: an example of an unknown kind: {keys}"
        document = text
    config = parse(document, CATALOG, f"README.md:{line}", samples_for(text))
    assert config.flows or config.apps or config.document.egress.allow_networks


# -- the Procfile ---------------------------------------------------------------------------------


def procfile() -> dict[str, str]:
    entries = {}
    for row in (ROOT / "Procfile").read_text().splitlines():
        if row.strip() and not row.lstrip().startswith("#"):
            name, _, command = row.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def start(command: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``command`` as a Procfile runner would start it, its output going to ``log_path``."""
    with open(log_path, "w") as log:
        return subprocess.Popen(
            shlex.split(command), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )


def documented_variables() -> set[str]:
    """The variables the README's environment tables name."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Environment", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", section))


async def test_the_procfile_worker_starts_and_polls_with_the_documented_environment(
    database: str, sb: Sandbox, tmp_path: Path
) -> None:
    command = procfile()["worker"]
    flows_file = ROOT / "config" / "flows.yaml"
    needed = set(VARIABLE.findall(flows_file.read_text()))
    assert needed <= documented_variables(), "the README must list what config/flows.yaml reads"
    book = sb.state.add_book("Welcome")
    sb.state.add_subscriber(book.id, "ann@example.com", webhook=False)
    venv_bin = str(Path(sys.executable).parent)
    env = cli_env(
        DATABASE_URL=database,
        CONNECTOR_SECRET_KEY=SECRET_KEY,
        PORT="0",
        PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        SENDPULSE_CLIENT_ID=sb.client_id,
        SENDPULSE_CLIENT_SECRET=sb.client_secret,
        SENDPULSE_BASE_URL=sb.base_url,
        SENDPULSE_LIST_ID=str(book.id),
        WELCOME_HOOK_URL="https://example.com/hooks/welcome",
        WELCOME_HOOK_SECRET=HOOK_SECRET,
    )
    log_path = tmp_path / "worker.log"
    proc = start(command, env, log_path)
    try:

        def polled() -> dict[str, Any] | None:
            for record in log_records(log_path.read_text()):
                if record.get("event") == "poll_finished":
                    return record
            assert proc.poll() is None, log_path.read_text()
            return None

        poll = await eventually(polled, "the worker's first poll", within=60)
        assert poll["flow"] == "welcome-new-subscribers"
        assert poll["items_seen"] == 1
        assert poll["events_created"] == 0  # start: now takes a baseline
        paths = [r.path for r in sb.requests(sb.client_id)]
        assert f"/addressbooks/{book.id}/emails" in paths
        events = [r.get("event") for r in log_records(log_path.read_text())]
        assert events.index("worker_started") < events.index("poll_finished")
        proc.send_signal(signal.SIGTERM)
        assert await wait_exit(proc, within=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
