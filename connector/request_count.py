"""How many API requests one poll made, on a client that other flows and actions share.

A connection's client serves every flow and action of that connection at once, so its own
total says nothing about one poll. The poll opens a count in its context; the client adds
each request it sends to the count of the context it runs in (tasks a poll starts inherit it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class RequestCount:
    """The requests sent so far under one :func:`counting` block."""

    value: int = 0


_current: ContextVar[RequestCount | None] = ContextVar("request_count", default=None)


@contextmanager
def counting() -> Iterator[RequestCount]:
    """Count the requests sent from this context until the block ends."""
    count = RequestCount()
    token = _current.set(count)
    try:
        yield count
    finally:
        _current.reset(token)


def count_request() -> None:
    """Called by a client for each request it sends (retries and re-authorised ones too)."""
    count = _current.get()
    if count is not None:
        count.value += 1
