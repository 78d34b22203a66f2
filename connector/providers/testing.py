"""Test helpers for the provider layer: a settable clock, a sleep that only records, and a
flow-file config pointing at a sandbox."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import yaml

from connector.config import Config, parse


class FakeClock:
    """``now()`` for injection; moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 10, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class RecordingSleep:
    """An ``asyncio.sleep`` stand-in that records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class _Record(Protocol):
    status: int
    at: float


def max_in_window(records: Iterable[_Record], span: float = 1.0, *, ok_only: bool = True) -> int:
    """The most requests inside any half-open window of ``span`` seconds."""
    times = sorted(r.at for r in records if not ok_only or 200 <= r.status < 300)
    best, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - span:
            start += 1
        best = max(best, end - start + 1)
    return best


def sandbox_config(
    base_url: str,
    client_id: str,
    client_secret: str,
    *,
    name: str = "main",
    extra: Mapping[str, Any] | None = None,
    flows: list[dict[str, Any]] | None = None,
) -> Config:
    """A validated flow file with one sendpulse connection to ``base_url``."""
    document = {
        "connections": {
            name: {
                "provider": "sendpulse",
                "client_id": client_id,
                "client_secret": client_secret,
                "base_url": base_url,
                **(extra or {}),
            }
        },
        "flows": flows or [],
    }
    return parse(yaml.safe_dump(document), "test.yaml")
