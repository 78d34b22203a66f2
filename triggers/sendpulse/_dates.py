"""SendPulse's date formats, both ways (reference §7: email/SMTP use UTC without a zone)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any


def parse_datetime(value: Any) -> datetime | None:
    """``YYYY-MM-DD HH:MM:SS`` (or ISO 8601, or a bare date) as an aware UTC datetime."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def epoch(value: Any) -> float:
    """The timestamp of a SendPulse date, for watermark positions; 0 when unreadable."""
    parsed = parse_datetime(value)
    return parsed.timestamp() if parsed is not None else 0.0


def fmt_datetime(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def days_between(since: float | None, until: datetime) -> list[str]:
    """Every UTC day from ``since``'s day to ``until``'s, as ``YYYY-MM-DD`` (at most 31)."""
    last = until.astimezone(UTC).date()
    first = last if since is None else datetime.fromtimestamp(since, UTC).date()
    # A flow paused for months resumes with the last month, not thousands of calls.
    first = max(first, last - timedelta(days=30))
    days: list[date] = []
    day = first
    while day <= last:
        days.append(day)
        day += timedelta(days=1)
    return [d.isoformat() for d in days]
