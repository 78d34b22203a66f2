"""The whole-run exchange check, run alone on a log handed in, as ``make test`` runs it.

``make test`` runs the suite on xdist workers that all append to one exchange log, then runs
``test_exchanges`` alone on that log. These run that second step on logs made here: it must
fail on a mismatching exchange (its figures counting every line of the log) and on an empty
log. On a good log it passes: ``make test`` runs it so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connector.providers.sendpulse_client import USER_AGENT
from connector.sandbox.exchanges import RECORD_ENV
from tests.contract.spec import Exchange

ROOT = Path(__file__).resolve().parents[2]
CHECK = "tests/contract/test_exchanges.py"


def sent(path: str, body: object) -> Exchange:
    """A request our client sent; the answer is taken for a scripted fault, so not held."""
    return Exchange(
        method="POST",
        path=path,
        query="",
        request_type="application/json",
        request_body=json.dumps(body),
        user_agent=USER_AGENT,
        status=200,
        response_type="application/json",
        response_body=None,
        fault="none answered",
    )


GOOD = sent("/live-chat/contacts/send", {"contact_id": "c", "messages": []})
# The live chat's base path as the client once had it: not an operation of the specs.
BAD = sent("/livechat/contacts/send", {"contact_id": "c", "messages": []})


def check_alone(log: Path, exchanges: list[Exchange]) -> subprocess.CompletedProcess[str]:
    log.write_text("".join(json.dumps(dataclasses.asdict(e)) + "\n" for e in exchanges))
    # Not as an xdist worker (where the check is skipped), and recording into the log given.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env[RECORD_ENV] = str(log)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", CHECK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


@pytest.mark.parametrize(
    ("exchanges", "shown"),
    [
        (
            [GOOD, GOOD, BAD],
            [
                # One part of the check holds the mismatch; the summary adds both parts up.
                "1 failed, 1 passed",
                "(2 distinct of 3 exchanges recorded",
                "1 mismatches",
                "request POST /livechat/contacts/send -> 200 (client): no such operation",
            ],
        ),
        ([], ["2 failed", "no exchange in the log handed in"]),
    ],
    ids=["a-mismatch", "an-empty-log"],
)
def test_the_check_of_a_log_handed_in_fails(
    tmp_path: Path, exchanges: list[Exchange], shown: list[str]
) -> None:
    result = check_alone(tmp_path / "exchanges.jsonl", exchanges)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    for text in shown:
        assert text in out, out
