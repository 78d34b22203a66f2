"""Mailing lists (address books) and their subscribers, indexed for cheap paging.

A book keeps its subscribers in one insertion-ordered list plus an email index. Deletion
leaves a hole that is compacted lazily at the next read, so paging a million-row list by
offset is a slice, never a sort or a scan.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import islice
from typing import Any

from connector.sandbox.clock import fmt_datetime

# Subscriber statuses as SendPulse numbers and explains them.
NEW, ACTIVE, CONFIRMATION_REQUESTED, ACTIVATION_REQUESTED = 0, 1, 2, 3
UNSUBSCRIBED, REJECTED, UNSUBSCRIBED_ALL, BLOCKED = 4, 5, 6, 7
STATUS_EXPLAIN = {
    NEW: "New",
    ACTIVE: "Active",
    CONFIRMATION_REQUESTED: "Confirmation requested",
    ACTIVATION_REQUESTED: "Activation requested",
    UNSUBSCRIBED: "Unsubscribed",
    REJECTED: "Rejected",
    UNSUBSCRIBED_ALL: "Unsubscribed from all",
    BLOCKED: "Blocked",
}
BOOK_STATUS_EXPLAIN = {0: "Active", 1: "Deleted", 3: "Awaiting clarification", 4: "Blocked"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def variable_type(value: Any) -> str:
    if isinstance(value, bool):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str) and _DATE.match(value):
        return "date"
    return "string"


class Subscriber:
    """One email in one book."""

    __slots__ = ("add_date", "alive", "email", "phone", "source", "status", "variables")

    def __init__(
        self,
        email: str,
        status: int,
        variables: dict[str, Any],
        add_date: float,
        phone: str | None = None,
        source: str = "api",
    ) -> None:
        self.email = email
        self.status = status
        self.variables = variables
        self.add_date = add_date
        self.phone = phone
        self.source = source
        self.alive = True

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def listing(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "status": self.status,
            "status_explain": STATUS_EXPLAIN.get(self.status, "Error"),
            "phone": self.phone,
            "variables": self.variables,
        }


class Book:
    """An address book with its subscribers and variable definitions."""

    def __init__(self, book_id: int, name: str, created: float) -> None:
        self.id = book_id
        self.name = name
        self.created = created
        self.status = 0
        self.variables: dict[str, str] = {}
        self._rows: list[Subscriber] = []
        self._index: dict[str, Subscriber] = {}
        self._holes = 0
        self.active_count = 0

    # -- reading -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._index)

    def get(self, email: str) -> Subscriber | None:
        return self._index.get(email.lower())

    def _compact(self) -> None:
        if self._holes:
            self._rows = [row for row in self._rows if row.alive]
            self._holes = 0

    def page(
        self, limit: int, offset: int, *, desc: bool = False, active: bool | None = None
    ) -> list[Subscriber]:
        self._compact()
        rows = self._rows
        if active is None:
            if desc:
                end = len(rows) - offset
                start = max(end - limit, 0)
                return rows[start:end][::-1] if end > 0 else []
            return rows[offset : offset + limit]
        # A status filter has no index of its own: it walks the list (documented as linear).
        source: Iterator[Subscriber] = reversed(rows) if desc else iter(rows)
        matching = (row for row in source if row.active == active)
        return list(islice(matching, offset, offset + limit))

    def total(self, active: bool | None = None) -> int:
        if active is None:
            return len(self._index)
        return self.active_count if active else len(self._index) - self.active_count

    def row_at(self, position: int) -> Subscriber:
        self._compact()
        return self._rows[position]

    def iter_rows(self) -> Iterator[Subscriber]:
        self._compact()
        return iter(self._rows)

    def summary(self) -> dict[str, Any]:
        total = len(self._index)
        return {
            "id": self.id,
            "name": self.name,
            "all_email_qty": total,
            "active_email_qty": self.active_count,
            "inactive_email_qty": total - self.active_count,
            "creationdate": fmt_datetime(self.created),
            "status": self.status,
            "status_explain": BOOK_STATUS_EXPLAIN.get(self.status, "Active"),
        }

    # -- writing -------------------------------------------------------------------------
    def register_variables(self, variables: dict[str, Any]) -> None:
        for name, value in variables.items():
            if name not in self.variables:
                self.variables[name] = variable_type(value)

    def upsert(
        self,
        email: str,
        variables: dict[str, Any],
        now: float,
        *,
        status: int = ACTIVE,
        update: bool = True,
        phone: str | None = None,
        source: str = "api",
    ) -> tuple[Subscriber, bool]:
        """Add or update; returns the row and whether it is new.

        Re-adding keeps the row's status and place (an unsubscribed email stays unsubscribed)
        and merges the variables unless `update` is off (the API's `dont_update`).
        """
        key = email.lower()
        self.register_variables(variables)
        row = self._index.get(key)
        if row is not None:
            if update and variables:
                # Rows may share one variables dict (bulk seeding), so writers replace it.
                row.variables = {**row.variables, **variables}
                if phone:
                    row.phone = phone
            return row, False
        row = Subscriber(key, status, dict(variables), now, phone, source)
        self._rows.append(row)
        self._index[key] = row
        if row.active:
            self.active_count += 1
        return row, True

    def bulk_rows(self) -> list[Subscriber]:
        """The raw row list, for seeding a large list without per-row calls."""
        return self._rows

    def bulk_index(self) -> dict[str, Subscriber]:
        return self._index

    def append_fast(self, row: Subscriber) -> None:
        """Bulk seeding: the caller guarantees a new, unique, lower-case email."""
        self._rows.append(row)
        self._index[row.email] = row
        if row.active:
            self.active_count += 1

    def set_status(self, email: str, status: int) -> Subscriber | None:
        row = self._index.get(email.lower())
        if row is None:
            return None
        if row.active and status != ACTIVE:
            self.active_count -= 1
        elif not row.active and status == ACTIVE:
            self.active_count += 1
        row.status = status
        return row

    def remove(self, email: str) -> Subscriber | None:
        row = self._index.pop(email.lower(), None)
        if row is None:
            return None
        row.alive = False
        self._holes += 1
        if row.active:
            self.active_count -= 1
        return row
