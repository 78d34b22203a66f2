"""Scripted and random faults: the next N matching calls fail in a chosen way."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["500", "429", "hang", "malformed", "drop", "empty", "wrapped"]
KINDS: tuple[str, ...] = ("500", "429", "hang", "malformed", "drop", "empty", "wrapped")


@dataclass(slots=True)
class Fault:
    """What to do instead of answering normally."""

    kind: str
    retry_after: float | None = None
    hang_seconds: float = 3600.0


@dataclass(slots=True)
class _Script:
    fault: Fault
    remaining: int
    path_prefix: str | None


class Faults:
    """The fault plan: scripts take priority (first added first), then random rates."""

    def __init__(self, seed: int = 0) -> None:
        self._scripts: list[_Script] = []
        self.rates: dict[str, float] = {}
        self._random = random.Random(seed)  # noqa: S311 - fault dice, not security

    def script(
        self,
        kind: str,
        count: int = 1,
        *,
        path_prefix: str | None = None,
        retry_after: float | None = None,
        hang_seconds: float = 3600.0,
    ) -> None:
        """The next `count` calls (under `path_prefix`, if given) fail with `kind`."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        fault = Fault(kind, retry_after, hang_seconds)
        self._scripts.append(_Script(fault, count, path_prefix))

    def set_rate(self, kind: str, rate: float) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError("a fault rate is a probability between 0 and 1")
        if rate == 0:
            self.rates.pop(kind, None)
        else:
            self.rates[kind] = rate

    def clear(self) -> None:
        self._scripts.clear()
        self.rates.clear()

    @property
    def pending(self) -> int:
        return sum(s.remaining for s in self._scripts)

    def take(self, path: str) -> Fault | None:
        for script in self._scripts:
            if script.path_prefix is None or path.startswith(script.path_prefix):
                script.remaining -= 1
                if script.remaining <= 0:
                    self._scripts.remove(script)
                return script.fault
        for kind, rate in self.rates.items():
            if self._random.random() < rate:
                return Fault(kind)
        return None
