"""The sandbox's clock: wall time plus an offset that tests move forward."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime


class Clock:
    """Seconds since the epoch; `advance` jumps ahead, `frozen` stops the wall-time drift."""

    def __init__(self, start: float | None = None, *, frozen: bool = False) -> None:
        self._base = time.time() if start is None else start
        self._mono0 = time.monotonic()
        self._offset = 0.0
        self.frozen = frozen
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        drift = 0.0 if self.frozen else time.monotonic() - self._mono0
        return self._base + drift + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        self._offset += seconds
        for listener in list(self._listeners):
            listener()

    def on_advance(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)


def fmt_datetime(ts: float) -> str:
    """SendPulse's email-service format: `YYYY-MM-DD HH:MM:SS`, UTC, no zone."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def fmt_iso(ts: float) -> str:
    """CRM style: ISO 8601 with a fraction and a zone."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def fmt_chatbot(ts: float) -> str:
    """Chatbot style, as the chatbot files show it: ``2020-12-11T21:00:00.000Z``."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def fmt_market(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def parse_datetime(text: str) -> float | None:
    """Lenient parse of `YYYY-MM-DD[ HH:MM:SS]` (UTC); None when it is not one of those."""
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text.strip(), pattern).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
