"""The contract tests' one-line summary, printed at the end of the run.

The exchange check comes in parts (tests/contract/test_exchanges.py), each in its own xdist
worker or one after another; each part's figures travel in its test report, and the summary
adds them up to the whole log's.
"""

from __future__ import annotations

import pytest

from tests.contract.checks import Report

REPORT_PROPERTY = "contract_report"
REPORTS: list[Report] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    for name, value in report.user_properties:
        if name == REPORT_PROPERTY:
            REPORTS.append(Report.from_dict(value))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORTS:
        return
    whole = Report()
    for report in REPORTS:
        whole.add(report)
    terminalreporter.write_line(whole.summary())
