"""Progress bars for long polls on a terminal, and none for short ones or off a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from connector import progress
from connector.progress_bar import TerminalPolls, bar, show_polls_on_terminal


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120), out


def test_a_long_poll_gets_a_bar_and_a_short_one_none() -> None:
    console, out = terminal()
    bars = TerminalPolls(console, min_pages=3)
    progress.add_listener(bars)
    try:
        short = progress.begin("short-flow", "t", "w")
        short.advance(1, 100)
        short.advance(2, 200)
        progress.end(short)
        assert "short-flow" not in out.getvalue()

        long = progress.begin("baseline-flow", "t", "w")
        for page in range(1, 8):
            long.advance(page, page * 100)
        assert bars._progress is not None
        bars._progress.refresh()
        shown = out.getvalue()
        assert "polling baseline-flow" in shown
        assert "7 pages, 700 items" in shown
        progress.end(long)
        assert bars._progress is None and not bars._tasks
    finally:
        progress.remove_listener(bars)


def test_off_a_terminal_nothing_is_drawn() -> None:
    out = io.StringIO()
    with bar("replaying", total=10, stream=out) as shown:
        shown.update(items=5, total=10)
    assert out.getvalue() == ""
    # Under pytest stderr is no terminal: the worker draws no bars and logs as usual.
    assert show_polls_on_terminal("console") is None
    assert show_polls_on_terminal("json") is None
