"""Coverage-guided fuzzing of the webhook intake's body parser (``make fuzz``).

Whatever the bytes, ``parse_batch`` returns changes Postgres can store, or raises
``MalformedWebhook``; anything else is a crash that libFuzzer saves to the artifact folder.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import atheris

with atheris.instrument_imports(include=["connector"]):
    from connector.catalog import CATALOG
    from connector.intake import MalformedWebhook, change_actions, parse_batch

ACTIONS = change_actions(CATALOG.triggers)


def test_one_input(data: bytes) -> None:
    try:
        changes, _others = parse_batch(data, ACTIONS)
    except MalformedWebhook:
        return
    for change in changes:
        # What the intake writes: text as UTF-8 without NUL, jsonb without NaN/Infinity.
        json.dumps(change.variables, allow_nan=False)
        for text in _strings([change.email, change.variables]):
            text.encode("utf-8")
            if "\x00" in text:
                raise AssertionError(f"a NUL reached the stored change: {change!r}")
        int(change.book_id)


def _strings(value: Any) -> list[str]:
    found, pending = [], [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            pending += item
        elif isinstance(item, str):
            found.append(item)
    return found


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
