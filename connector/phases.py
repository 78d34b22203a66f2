"""Where in its interval each flow polls, so that N flows spread evenly over it.

A flow polls at the instants ``t`` (seconds since the Unix epoch) with
``t ≡ phase (mod every)``. The phases come from the flows' names alone: the flows that share
an interval are put in the order of a hash of their names (a per-install instance's name
holds its install, ``flow@app-user``) and spaced evenly over the interval. So every worker,
after every restart and every reload of the same flows, computes the same phases; adding or
removing a flow moves each of the others by less than ``every / N``. Spacing them by rank
rather than by the hash itself keeps the load flat to the second: hashed phases alone fall
like a Poisson process, whose busiest second out of 300 holds about 1.8 times the mean.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from connector.units import format_duration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A flow the database has never seen polls within this long (or its interval, if shorter).
FIRST_POLL_WITHIN = 30.0


def name_hash(name: str) -> int:
    """A stable 64-bit hash of a flow name (Python's ``hash()`` changes with every process)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


def phases(flows: Iterable[tuple[str, timedelta]]) -> dict[str, float]:
    """Each flow's phase in seconds, in ``[0, every)``, from ``(name, every)`` pairs."""
    groups: dict[timedelta, list[str]] = defaultdict(list)
    for name, every in flows:
        groups[every].append(name)
    result: dict[str, float] = {}
    for every, names in groups.items():
        seconds = every.total_seconds()
        ordered = sorted(names, key=lambda name: (name_hash(name), name))
        for rank, name in enumerate(ordered):
            result[name] = rank * seconds / len(ordered)
    return result


def next_slot(phase: float, every: float, after: datetime) -> datetime:
    """The first instant at or after ``after`` that is ``phase`` seconds into an interval."""
    elapsed = (after - EPOCH).total_seconds()
    cycles = math.ceil((elapsed - phase) / every)
    slot = EPOCH + timedelta(seconds=cycles * every + phase)
    # Float seconds since 1970 carry about a microsecond of error: never answer a time before.
    return slot if slot >= after else slot + timedelta(seconds=every)


def first_poll_delay(phase: float, every: float) -> float:
    """Seconds until a new flow's first poll: its place in the interval, scaled to 30 s.

    New flows added together (a first start, a reload) spread evenly over those seconds, in
    the same order as their phases; afterwards each settles on its phase.
    """
    return phase / every * min(every, FIRST_POLL_WITHIN)


@dataclass(frozen=True)
class Spread:
    """The load a set of flows puts on the scheduler."""

    flows: int
    every: list[timedelta]
    max_polls_per_s: int
    mean_polls_per_s: float

    def log_fields(self) -> dict[str, object]:
        return {
            "flows": self.flows,
            "every": ",".join(format_duration(every) for every in self.every),
            "max_polls_per_s": self.max_polls_per_s,
            "mean_polls_per_s": round(self.mean_polls_per_s, 2),
        }


def spread(flows: Iterable[tuple[str, timedelta]]) -> Spread:
    """The polls started in the busiest second, and the mean, under :func:`phases`.

    The busiest second is counted per interval and summed over the intervals (exact when all
    flows share one, an upper bound otherwise); jitter is left out.
    """
    pairs = list(flows)
    found = phases(pairs)
    every_of = dict(pairs)
    per_second: dict[timedelta, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for name, phase in found.items():
        per_second[every_of[name]][int(phase)] += 1
    busiest = sum(max(counts.values()) for counts in per_second.values())
    mean = sum(sum(counts.values()) / every.total_seconds() for every, counts in per_second.items())
    return Spread(
        flows=len(found),
        every=sorted(per_second),
        max_polls_per_s=busiest,
        mean_polls_per_s=mean,
    )
