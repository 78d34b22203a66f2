"""The one wall clock of the process; parts that must be testable take it as a parameter."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, timezone-aware in UTC: every stored and compared time is aware."""
    return datetime.now(UTC)
