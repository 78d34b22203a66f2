"""Holding a session's recorded exchanges to the contract, and counting what was held."""

from __future__ import annotations

import json
import re
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tests.contract.spec import GENERAL_STATUSES, Contract, Exchange, Operation

SANDBOX_README = Path(__file__).parents[2] / "connector" / "sandbox" / "README.md"
UNDOCUMENTED_HEADING = "## Operations the specs do not document"


def undocumented_table(readme: Path = SANDBOX_README) -> dict[str, str]:
    """``METHOD /path`` -> reason, from the sandbox README's table of undocumented calls."""
    text = readme.read_text(encoding="utf-8")
    _, _, section = text.partition(UNDOCUMENTED_HEADING)
    section = section.split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(
            r"\|\s*`?(GET|POST|PUT|PATCH|DELETE) (/[^`|\s]*)`?\s*\|\s*(.+?)\s*\|", line
        )
        if match:
            rows[f"{match[1]} {match[2]}"] = match[3]
    return rows


def template_matches(row: str, method: str, path: str) -> bool:
    """Does ``METHOD /a/{x}`` from the table cover this call?"""
    row_method, _, template = row.partition(" ")
    parts = [
        "[^/]+" if p.startswith("{") and p.endswith("}") else re.escape(p)
        for p in template.split("/")
    ]
    return row_method == method and re.fullmatch("/".join(parts), path) is not None


@dataclass
class Report:
    """What one check of a set of exchanges found."""

    recorded: int = 0
    distinct: int = 0
    requests_validated: int = 0
    responses_validated: int = 0
    faults_skipped: int = 0
    general_statuses: int = 0
    undocumented_statuses: Counter[str] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    our_operations: set[str] = field(default_factory=set)
    not_in_specs: Counter[str] = field(default_factory=Counter)
    our_undocumented: set[str] = field(default_factory=set)
    mismatches: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"contract: {len(self.operations)} operations covered "
            f"({len(self.our_operations)} called by the connector), "
            f"{self.requests_validated} requests validated, "
            f"{self.responses_validated} responses validated "
            f"({self.distinct} distinct of {self.recorded} exchanges recorded; "
            f"{self.faults_skipped} scripted faults and {self.general_statuses} "
            f"401/429/5xx answers not held to an operation), "
            f"{len(self.mismatches)} mismatches"
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain lists and dicts, to travel from an xdist worker in a test report."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, set):
                value = sorted(value)
            elif isinstance(value, Counter):
                value = dict(value)
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        report = cls()
        for f in fields(cls):
            # Each field's own type again (Counter, set, list, int) from its plain form.
            setattr(report, f.name, type(getattr(report, f.name))(data[f.name]))
        return report

    def add(self, other: Report) -> None:
        """Count ``other`` in too: the check of a disjoint part of the same log."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            setattr(self, f.name, mine | theirs if isinstance(mine, set) else mine + theirs)


def part_of(exchange: Exchange, parts: int) -> int:
    """Which of ``parts`` disjoint parts of a log this exchange belongs to: the same one for
    every copy of it, in every process (so each part counts its distinct exchanges alone)."""
    identity = json.dumps(exchange.identity()).encode()
    return zlib.crc32(identity) % parts


def _label(exchange: Exchange) -> str:
    who = "client" if exchange.ours else "test"
    return f"{exchange.method} {exchange.path} -> {exchange.status} ({who})"


def check_exchanges(
    exchanges: Iterable[Exchange], contract: Contract, undocumented: dict[str, str]
) -> Report:
    """Every request our client sent, and every answer to a documented operation."""
    report = Report()
    seen: set[tuple[object, ...]] = set()
    for exchange in exchanges:
        report.recorded += 1
        identity = exchange.identity()
        if identity in seen:
            continue
        seen.add(identity)
        report.distinct += 1
        op = contract.find(exchange.method, exchange.path)
        if op is None:
            _not_found(report, exchange, contract, undocumented)
            continue
        report.operations[op.key] += 1
        if exchange.ours:
            report.our_operations.add(op.key)
            problems = contract.check_request(op, exchange)
            report.requests_validated += 1
            report.mismatches += [f"request {_label(exchange)}: {p}" for p in problems]
        _answer(report, exchange, op, contract)
    return report


def _not_found(
    report: Report, exchange: Exchange, contract: Contract, undocumented: dict[str, str]
) -> None:
    path = re.sub(r"/{2,}", "/", exchange.path)
    listed = next(
        (row for row in undocumented if template_matches(row, exchange.method, path)), None
    )
    report.not_in_specs[listed or f"{exchange.method} {path}"] += 1
    if exchange.ours:
        report.our_undocumented.add(listed or f"{exchange.method} {path}")
        if listed is None:
            others = ", ".join(sorted({o.key for o in contract.find_any(path)})) or "none"
            report.mismatches.append(
                f"request {_label(exchange)}: no such operation in the specs "
                f"(same path: {others}) and not in the sandbox README's table"
            )


def _answer(report: Report, exchange: Exchange, op: Operation, contract: Contract) -> None:
    if exchange.fault is not None:
        report.faults_skipped += 1
        return
    if exchange.truncated:
        return
    if op.documents(exchange.status):
        report.responses_validated += 1
        problems = contract.check_response(op, exchange)
        report.mismatches += [f"response {_label(exchange)}: {p}" for p in problems]
    elif exchange.status in GENERAL_STATUSES:
        report.general_statuses += 1
    elif exchange.status < 300 or op.documents_errors:
        documented = ", ".join(sorted(op.statuses))
        report.mismatches.append(
            f"response {_label(exchange)}: status {exchange.status} is not one the spec "
            f"documents for {op.key} ({documented})"
        )
    else:
        report.undocumented_statuses[f"{op.key} {exchange.status}"] += 1
