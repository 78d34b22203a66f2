"""Every exchange the session recorded at the sandbox, held to SendPulse's OpenAPI files.

Runs after every other test of the session (``after_all_exchanges``), so a whole-suite run
checks every call the suite made: each request our client sent must match its operation
(method, path, query, body), and each answer the sandbox gave to a documented operation must
match that operation's response schema, error answers included.

Beside other tests on xdist workers it is skipped (it cannot tell when the others are done):
``make test`` runs it alone after them, on the log all the workers appended to (handed in
through ``CONNECTOR_SANDBOX_RECORD``), so it still sees every call of the whole run. A log
handed in that way must hold exchanges: an empty one fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.sandbox.exchanges import RECORD_ENV
from tests.conftest import exchange_log_is_this_sessions
from tests.contract.checks import check_exchanges, part_of, undocumented_table
from tests.contract.conftest import REPORT_PROPERTY
from tests.contract.spec import read_exchanges, shared_contract

SHOWN = 40
# The check is CPU-bound (a few thousand openapi-core validations), so it comes in parts that
# xdist runs side by side. Every copy of an exchange falls in the same part: the parts' figures
# add up to the whole log's, and the terminal summary prints them so.
PARTS = 2


# A whole-suite run records a few thousand distinct exchanges, and openapi-core takes tens of
# milliseconds for each on a loaded 2-core machine: far more than the per-test default.
@pytest.mark.timeout(1200)
@pytest.mark.after_all_exchanges
@pytest.mark.parametrize("part", range(PARTS))
def test_every_recorded_exchange_matches_the_contract(
    part: int, record_property: Callable[[str, object], None]
) -> None:
    path = Path(os.environ[RECORD_ENV])
    exchanges = list(read_exchanges(path))
    if not exchanges:
        # The run that should have filled a log handed in recorded nothing: never a pass.
        assert exchange_log_is_this_sessions(), f"no exchange in the log handed in, {path}"
        # This test alone: nothing ran before it (test_workload proves the recorder is on).
        pytest.skip("no exchange was recorded in this session")
    mine = [exchange for exchange in exchanges if part_of(exchange, PARTS) == part]
    report = check_exchanges(mine, shared_contract(), undocumented_table())
    record_property(REPORT_PROPERTY, report.as_dict())
    print(f"part {part + 1} of {PARTS}: {report.summary()}")
    shown = "\n".join(report.mismatches[:SHOWN])
    assert not report.mismatches, f"{len(report.mismatches)} mismatches, first {SHOWN}:\n{shown}"
