"""The contract tests' one-line summary, printed at the end of the run."""

from __future__ import annotations

import pytest

from tests.contract.checks import Report

REPORTS: list[Report] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for report in REPORTS:
        terminalreporter.write_line(report.summary())
