"""SendPulse's date formats, both ways (reference §7: email/SMTP use UTC without a zone)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connector.http_client.api_errors import UnexpectedResponse

# Besides ISO 8601 (which covers ``YYYY-MM-DD HH:MM:SS`` and bare dates).
_FORMATS = ("%Y-%m-%d %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y")
_NO_DATE = ("", "0000-00-00 00:00:00", "0000-00-00")


def read_datetime(value: Any) -> datetime | None:
    """A SendPulse date as an aware UTC datetime; None when there is none; else ValueError.

    Unix seconds (a number, or digits in a string, as email webhooks send them), ISO 8601 with
    or without a zone, and the ``d.m.Y`` forms; zone-less dates are UTC (reference §7).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a date")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{value!r} is not a timestamp")
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError) as exc:
            raise ValueError(f"{value!r} is not a timestamp") from exc
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a date")
    text = value.strip()
    if text in _NO_DATE:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return read_datetime(seconds)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for fmt in _FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)  # noqa: DTZ007 - UTC is added below
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"{value!r} is not a date SendPulse writes") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_datetime(value: Any) -> datetime | None:
    """For payloads: the date if it can be read, else None (the raw value stays in the item)."""
    try:
        return read_datetime(value)
    except ValueError:
        return None


def epoch_or_none(value: Any) -> float | None:
    """The timestamp of a date, None when the item has none; unreadable dates raise.

    An unreadable date must fail the poll: taken for 0 it would put the item below the
    watermark, and it would be lost without a trace.
    """
    try:
        parsed = read_datetime(value)
    except ValueError as exc:
        raise UnexpectedResponse(f"unreadable date: {exc}") from exc
    return None if parsed is None else parsed.timestamp()


def epoch(value: Any) -> float:
    """The timestamp of a date, for watermark positions; a missing or unreadable one raises."""
    position = epoch_or_none(value)
    if position is None:
        raise UnexpectedResponse("an item has no date to order it by")
    return position


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
