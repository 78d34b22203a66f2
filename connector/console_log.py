"""The console renderer: log lines a person can scan on a terminal.

The time, level and event name come first, then the fields that say what happened (flow,
trigger, item, action, outcome, summary), then the rest in a fixed order. Event and delivery
ids are cut to their first 8 characters, enough to find them with ``connector events show``
or ``connector deliveries --event``. A line that fits the terminal stays one line; the rest
of a wider one goes on an indented line below. JSON output is untouched by any of this.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, MutableMapping
from typing import Any

FIRST = (
    "flow",
    "trigger",
    "item_key",
    "item",
    "action",
    "outcome",
    "status",
    "summary",
    "error",
)
SHORT = frozenset(
    {"event_id", "delivery_id", "delivery", "webhook_id", "event_ids", "delivery_ids"}
)
ID_LENGTH = 8
HIDDEN = frozenset({"logger", "logger_name"})
_RESET = "\033[0m"
_DIM = "\033[2m"
_BOLD = "\033[1m"
_LEVEL_COLORS = {
    "debug": "\033[34m",
    "info": "\033[32m",
    "warning": "\033[33m",
    "error": "\033[31m",
    "critical": "\033[31;1m",
    "exception": "\033[31m",
}


def terminal_width() -> int:
    return shutil.get_terminal_size(fallback=(160, 24)).columns


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > ID_LENGTH:
        return value[:ID_LENGTH]
    if isinstance(value, list):
        return [_short(v) for v in value]
    return value


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    if not text or any(c.isspace() or c in "\"'=" for c in text):
        return repr(text) if isinstance(value, str) else text
    return text


class ScanRenderer:
    """structlog processor: one ``key=value`` line per event, the telling fields first."""

    def __init__(self, *, colors: bool, width: Callable[[], int] = terminal_width) -> None:
        self.colors = colors
        self.width = width

    def _paint(self, text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if self.colors else text

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
        fields = dict(event_dict)
        stamp = str(fields.pop("timestamp", ""))
        # "2026-01-01T12:00:00.123456Z": the date is noise on a terminal you are watching.
        clock = stamp[11:19] if len(stamp) >= 19 else stamp
        level = str(fields.pop("level", "info"))
        name = str(fields.pop("event", ""))
        exception = fields.pop("exception", None)
        for key in HIDDEN:
            fields.pop(key, None)
        ordered = [k for k in FIRST if k in fields]
        ordered += sorted(k for k in fields if k not in FIRST)
        parts = []
        for key in ordered:
            value = fields[key]
            if value is None:
                continue
            if key in SHORT:
                value = _short(value)
            parts.append(f"{self._paint(key, _DIM)}={_text(value)}")
        head = " ".join(
            p
            for p in (
                self._paint(clock, _DIM) if clock else "",
                self._paint(f"{level:<7}", _LEVEL_COLORS.get(level, "")),
                self._paint(name, _BOLD),
            )
            if p
        )
        line = " ".join([head, *parts])
        width = self.width()
        if _visible_length(line, self.colors) > width:
            # Keep the head and as many fields as fit on the first line; indent the rest.
            lines, current = [], head
            for part in parts:
                candidate = f"{current} {part}"
                if current != head and _visible_length(candidate, self.colors) > width:
                    lines.append(current)
                    current = "    " + part
                else:
                    current = candidate
            lines.append(current)
            line = "\n".join(lines)
        if exception:
            line += "\n" + str(exception)
        return line


def _visible_length(text: str, colors: bool) -> int:
    if not colors:
        return len(text)
    import re

    return len(re.sub(r"\033\[[0-9;]*m", "", text))
