"""Durations (``30s``, ``5m``, ``1h30m``) and rate limits (``3/s``, ``600/m``) for flow files."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic.dataclasses import dataclass

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"5m"``, ``"1h30m"``, or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a string like 30s, 5m or 1h")
    if isinstance(value, int | float):
        if value != value:  # NaN
            raise ValueError("a duration is a string like 30s, 5m or 1h")
        if value < 0:
            raise ValueError("a duration cannot be negative")
        try:
            return timedelta(seconds=value)
        except OverflowError:
            raise ValueError(f"{value!r} is too long a duration") from None
    if not isinstance(value, str):
        raise ValueError("a duration is a string like 30s, 5m or 1h")
    text = value.strip().lower()
    if not text or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{value!r} is not a duration; write it like 30s, 5m, 1h or 1h30m")
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{value!r} is too long a duration") from None


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


MIN_TIMEOUT = timedelta(seconds=1)


def check_timeout(value: timedelta, at_most: timedelta) -> timedelta:
    """A request timeout between 1s and ``at_most``; aiohttp reads 0 as no timeout at all."""
    if value < MIN_TIMEOUT:
        raise ValueError(
            f"timeout must be at least 1s (got {format_duration(value)}); "
            "a request without a timeout can hang forever"
        )
    if value > at_most:
        raise ValueError(
            f"timeout must be at most {format_duration(at_most)} (got {format_duration(value)})"
        )
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "5m"]}),
]


@dataclass(frozen=True)
class RateLimit:
    """At most ``max_rate`` requests in any ``period`` seconds."""

    max_rate: float
    period: float

    @property
    def per_second(self) -> float:
        return self.max_rate / self.period

    def __str__(self) -> str:
        per = format_duration(timedelta(seconds=self.period))
        return f"{self.max_rate:g}/{per.removeprefix('1') if per[1:].isalpha() else per}"


RATE_PATTERN = r"^\d+(\.\d+)?/(\d+(\.\d+)?)?(ms|s|m|h|d)$"


def parse_rate_limit(value: Any) -> RateLimit:
    """``"3/s"``, ``"600/m"``, ``"10/2s"``."""
    if isinstance(value, RateLimit):
        return value
    if not isinstance(value, str) or not re.fullmatch(RATE_PATTERN, value.strip()):
        raise ValueError(f"{value!r} is not a rate limit; write it like 3/s or 600/m")
    count, _, per = value.strip().partition("/")
    if per[0].isalpha():
        per = "1" + per
    period = parse_duration(per).total_seconds()
    rate = float(count)
    if rate <= 0 or period <= 0:
        raise ValueError("a rate limit must allow at least some requests")
    return RateLimit(max_rate=rate, period=period)


RateLimitField = Annotated[
    RateLimit,
    BeforeValidator(parse_rate_limit),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": RATE_PATTERN, "examples": ["3/s", "600/m"]}),
]
