"""Rich progress bars for long work started from a terminal: pages, items, rate and ETA.

Off a terminal (a pipe, a cron job, CI) they show nothing; the JSON log's ``poll_progress``
lines carry the same figures there.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO


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
