"""Every exchange the session recorded at the sandbox, held to SendPulse's OpenAPI files.

Runs after every other test of the session (``after_all_exchanges``), so a whole-suite run
checks every call the suite made: each request our client sent must match its operation
(method, path, query, body), and each answer the sandbox gave to a documented operation must
match that operation's response schema, error answers included.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connector.sandbox.exchanges import RECORD_ENV
from tests.contract.checks import check_exchanges, undocumented_table
from tests.contract.conftest import REPORTS
from tests.contract.spec import read_exchanges, shared_contract

SHOWN = 40


# A whole-suite run records a few thousand distinct exchanges, and openapi-core takes tens of
# milliseconds for each on a loaded 2-core machine: far more than the per-test default.
@pytest.mark.timeout(1200)
@pytest.mark.after_all_exchanges
def test_every_recorded_exchange_matches_the_contract() -> None:
    path = Path(os.environ[RECORD_ENV])
    report = check_exchanges(read_exchanges(path), shared_contract(), undocumented_table())
    if report.recorded == 0:
        # This test alone: nothing ran before it (test_workload proves the recorder is on).
        pytest.skip("no exchange was recorded in this session")
    REPORTS.append(report)
    print(report.summary())
    shown = "\n".join(report.mismatches[:SHOWN])
    assert not report.mismatches, f"{len(report.mismatches)} mismatches, first {SHOWN}:\n{shown}"
