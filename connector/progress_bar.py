"""Rich progress bars for long work started from a terminal: pages, items, rate and ETA.

Off a terminal (a pipe, a cron job, CI) they show nothing; the JSON log's ``poll_progress``
lines carry the same figures there.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from connector.progress import PollProgress


class Bar:
    """One task's bar; ``update`` takes totals so far (a no-op off a terminal)."""

    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task

    def update(self, *, items: int, pages: int | None = None, total: int | None = None) -> None:
        if self._progress is None:
            return
        fields: dict[str, Any] = {"completed": items}
        if pages is not None:
            fields["pages"] = pages
        if total is not None:
            fields["total"] = total
        self._progress.update(self._task, **fields)


def _rate_column(unit: str) -> Any:
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("-" if speed is None else f"{speed:,.1f} {unit}/s")

    return RateColumn()


@contextmanager
def bar(
    description: str,
    *,
    total: int | None = None,
    unit: str = "items",
    stream: TextIO | None = None,
) -> Iterator[Bar]:
    """A progress bar on ``stream`` (stderr) when it is a terminal."""
    stream = stream or sys.stderr
    if not stream.isatty():
        yield Bar(None, None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [TextColumn("[bold]{task.description}"), BarColumn()]
    if total is not None:
        columns += [MofNCompleteColumn(), TaskProgressColumn()]
    else:
        columns += [TextColumn("{task.completed} " + unit)]
    columns += [
        TextColumn("{task.fields[pages]} pages"),
        _rate_column(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(file=stream), transient=False) as progress:
        task = progress.add_task(description, total=total, pages=0)
        yield Bar(progress, task)


class TerminalPolls:
    """Bars for this process's long polls (a first baseline, a ``start: all`` backfill).

    A poll gets a bar from its ``min_pages``-th page on, so the short polls of every few
    seconds draw nothing; the bar goes when the poll ends. Log lines print above the bars.
    """

    def __init__(self, console: Any, *, min_pages: int = 3) -> None:
        self.console = console
        self.min_pages = min_pages
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __call__(self, poll: PollProgress, finished: bool) -> None:
        task = self._tasks.get(poll.flow)
        if finished:
            if task is not None:
                self._progress.remove_task(self._tasks.pop(poll.flow))
            if not self._tasks and self._progress is not None:
                self._progress.stop()
                self._progress = None
            return
        if task is None:
            if poll.pages < self.min_pages:
                return
            task = self._tasks[poll.flow] = self._start().add_task(poll.flow, total=None, pages=0)
        self._progress.update(task, completed=poll.items, pages=poll.pages)

    def _start(self) -> Any:
        if self._progress is None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]polling {task.description}"),
                BarColumn(),
                TextColumn("{task.fields[pages]} pages, {task.completed} items"),
                _rate_column("items"),
                TimeElapsedColumn(),
                console=self.console,
                redirect_stderr=True,
                redirect_stdout=False,
            )
            self._progress.start()
        return self._progress


def show_polls_on_terminal(log_format: str | None) -> TerminalPolls | None:
    """Draw long polls' bars on stderr when it is a terminal showing console logs."""
    from rich.console import Console

    from connector import progress

    if not sys.stderr.isatty() or log_format != "console":
        return None
    bars = TerminalPolls(Console(stderr=True))
    progress.add_listener(bars)
    return bars
