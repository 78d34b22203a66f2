"""``log``: write the event as one structlog line and nothing else."""

from __future__ import annotations

from typing import ClassVar, Literal

import structlog

from connector.plugins import Action, ActionContext, ActionResult, PluginParams, StoredEvent

log = structlog.get_logger("connector.actions.log")


class Params(PluginParams):
    level: Literal["debug", "info", "warning"] = "info"


class Log(Action[Params]):
    """Log the event (useful to try a trigger before wiring a real action)."""

    key: ClassVar[str] = "log"
    summary = "log the event"

    async def run(self, ctx: ActionContext, event: StoredEvent, params: Params) -> ActionResult:
        """Write one ``event_logged`` line with the payload."""
        level = params.level
        getattr(log, level)(
            "event_logged",
            flow=event.flow,
            trigger=event.trigger,
            event_id=event.id,
            item_key=event.item_key,
            delivery_id=ctx.delivery_id,
            payload=event.payload,
        )
        return ActionResult(summary=f"logged {event.item_key}")
