"""``log``: write the event as one structlog line and nothing else."""

from __future__ import annotations

from typing import ClassVar, Literal

from connector.plugins import Action, PluginParams


class Params(PluginParams):
    level: Literal["debug", "info", "warning"] = "info"


class Log(Action):
    """Log the event (useful to try a trigger before wiring a real action)."""

    key: ClassVar[str] = "log"
    Params = Params
    summary = "log the event"
