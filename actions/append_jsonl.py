"""``append_jsonl``: append the event as one JSON line to a file, fsync'd."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from connector.plugins import Action, PluginParams


class Params(PluginParams):
    path: Path


class AppendJsonl(Action):
    """Append one JSON line per event to a file and fsync it."""

    key: ClassVar[str] = "append_jsonl"
    Params = Params
    summary = "append the event to a JSON-lines file"
