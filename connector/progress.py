"""Progress of long polls: what the status page shows and ``poll_progress`` log lines.

A first baseline of a million-subscriber list is some 10,000 requests, about 17 minutes at
SendPulse's rate limit. The engine reports each page and item here; this process's polls in
progress can then be read by the status page, and every ``every_pages`` pages one
``poll_progress`` line goes to the log with the same figures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

log = structlog.get_logger(__name__)

DEFAULT_EVERY_PAGES = 50


def every_pages() -> int:
    """Pages between two ``poll_progress`` lines (``CONNECTOR_PROGRESS_PAGES``, default 50)."""
    raw = os.environ.get("CONNECTOR_PROGRESS_PAGES", "").strip()
    try:
        value = int(raw) if raw else DEFAULT_EVERY_PAGES
    except ValueError:
        value = DEFAULT_EVERY_PAGES
    return max(1, value)


@dataclass
class PollProgress:
    """One poll in progress: pages (requests) and items so far, and how fast they come."""

    flow: str
    trigger: str
    worker: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    pages: int = 0
    items: int = 0
    every: int = field(default_factory=every_pages)
    _t0: float = field(default_factory=time.monotonic)
    _logged_pages: int = 0

    @property
    def elapsed_s(self) -> float:
        return max(time.monotonic() - self._t0, 1e-9)

    @property
    def items_per_s(self) -> float:
        return self.items / self.elapsed_s

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.elapsed_s

    def advance(self, pages: int, items: int) -> None:
        """Record the totals so far; log a line each time ``every`` more pages are done."""
        new_page = pages != self.pages
        self.pages, self.items = pages, items
        if new_page or items % 100 == 0:
            _notify(self, finished=False)
        if self.pages - self._logged_pages >= self.every:
            self._logged_pages = self.pages
            log.info(
                "poll_progress",
                flow=self.flow,
                trigger=self.trigger,
                worker=self.worker,
                pages=self.pages,
                items=self.items,
                elapsed_s=round(self.elapsed_s, 1),
                pages_per_s=round(self.pages_per_s, 2),
                items_per_s=round(self.items_per_s, 1),
            )


_active: dict[str, PollProgress] = {}
# Told of each new page (and every 100 items) and of each poll's end: terminal progress bars.
Listener = Callable[[PollProgress, bool], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def _notify(progress: PollProgress, *, finished: bool) -> None:
    for listener in list(_listeners):
        listener(progress, finished)


def begin(flow: str, trigger: str, worker: str) -> PollProgress:
    progress = PollProgress(flow=flow, trigger=trigger, worker=worker)
    _active[flow] = progress
    return progress


def end(progress: PollProgress) -> None:
    if _active.get(progress.flow) is progress:
        del _active[progress.flow]
    _notify(progress, finished=True)


def active() -> dict[str, PollProgress]:
    """This process's polls in progress, by flow."""
    return dict(_active)
