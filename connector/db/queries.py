"""Named SQL queries, kept in ``.sql`` files under ``-- name: x`` headers, loaded once."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*-*\s*$", re.MULTILINE)


class QueryNotFound(KeyError):
    """A query name that no ``.sql`` file defines: a programming error."""


def parse_queries(text: str) -> dict[str, str]:
    """Split a file of ``-- name: x`` sections into {name: sql}."""
    found: dict[str, str] = {}
    parts = _HEADER.split(text)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in found:
            raise ValueError(f"query {name!r} is defined twice")
        found[name] = body.strip()
    return found


@cache
def _all() -> dict[str, str]:
    merged: dict[str, str] = {}
    folder = resources.files("connector.db")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith("queries.sql"):
            for name, sql in parse_queries(entry.read_text(encoding="utf-8")).items():
                if name in merged:
                    raise ValueError(f"query {name!r} is defined in two files")
                merged[name] = sql
    return merged


def q(name: str) -> str:
    """The SQL text of the query called ``name``."""
    try:
        return _all()[name]
    except KeyError:
        raise QueryNotFound(name) from None
