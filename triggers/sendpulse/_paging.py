"""Paging a list that may change while it is read, without losing a row.

Offsets move when rows are deleted: if a subscriber ahead of the reader is deleted between two
page calls, every later row moves up by one and the first row of the next page is never seen
(it would look removed, and come back as added). So each page starts one row early, on the last
row already read, and the new rows are those after that anchor. When the anchor is not where
it was, rows before it were deleted: the reader steps back until it finds one of the last few
rows it read, and carries on from there. Cost: one row of overlap per page (1%), plus a page
per shift.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from connector.errors import RetriableError
from connector.http_client.api_errors import MalformedResponse
from connector.plugins import ApiClient, Item

PAGE = 100
ANCHORS = 20
MAX_STEPS_BACK = 20


class ListShifted(RetriableError):
    """The list changed too much while it was read; the next poll starts over."""


async def _page(
    client: ApiClient, path: str, params: Mapping[str, Any] | None, offset: int
) -> list[Item]:
    answer = await client.request(
        "GET", path, params={**(params or {}), "limit": PAGE, "offset": offset}
    )
    # The reference documents a bare array here. Anything else (an empty body, a wrapper,
    # a row that is not an object) fails the poll: taken for "no more rows", it would make
    # every row after it look removed, and added again (as new events) on the next poll.
    return rows_of(answer, f"{path} offset {offset}")


def rows_of(rows: Any, where: str) -> list[Item]:
    """``rows`` if it is a list of objects; else :class:`MalformedResponse` (retriable).

    A page that cannot be read must fail the poll, never pass for an empty one: that would
    end the list early, and the rows after it would be lost (or look removed).
    """
    if not isinstance(rows, list):
        shape = "an empty reply" if rows is None else f"a {type(rows).__name__}"
        raise MalformedResponse(f"{where}: expected a list, got {shape}")
    if not all(isinstance(row, dict) for row in rows):
        raise MalformedResponse(f"{where}: a row of the list is not an object")
    return rows


def _after_anchor(keys: list[str], tail: list[str]) -> int | None:
    """Index just past the most recent anchor found in ``keys``; None if none is there."""
    for anchor in reversed(tail):
        if anchor in keys:
            return len(keys) - keys[::-1].index(anchor)
    return None


async def anchored_pages(
    client: ApiClient,
    path: str,
    key: Callable[[Item], str],
    params: Mapping[str, Any] | None = None,
) -> AsyncIterator[tuple[str, Item]]:
    """Every row of a limit/offset list once at least, even if rows are deleted meanwhile,
    each with its key (computed once a row)."""
    tail: list[str] = []
    offset = 0
    while True:
        start = offset - 1 if tail else 0
        rows = await _page(client, path, params, start)
        keys = [key(row) for row in rows]
        cut = 0
        if tail:
            found = _after_anchor(keys, tail)
            steps = 0
            while found is None:
                if start == 0 or steps >= MAX_STEPS_BACK:
                    raise ListShifted(f"{path} changed too much while it was paged")
                # The anchors moved up: rows before them were deleted. Look a page earlier.
                start = max(0, start - (PAGE - 1))
                rows = await _page(client, path, params, start)
                keys = [key(row) for row in rows]
                found = _after_anchor(keys, tail)
                steps += 1
            cut = found
        for pair in zip(keys[cut:], rows[cut:], strict=True):
            yield pair
        tail = (tail + keys[cut:])[-ANCHORS:] if rows[cut:] else tail
        if len(rows) < PAGE:
            return
        offset = start + len(rows)
