"""What every SendPulse action shares: the connection's client, and small value helpers."""

from __future__ import annotations

from typing import Any, ClassVar

from connector.errors import FatalError
from connector.plugins import (
    Action,
    ActionContext,
    ActionResult,
    ParamsT,
    Provider,
    StoredEvent,
)

# A template renders to a string; these fields take the number it spells.
Number = int | str


def as_int(value: Any, name: str) -> int:
    """A rendered id as an integer; a template that rendered to text is a fatal error."""
    try:
        return int(str(value).strip())
    except ValueError:
        raise FatalError(f"{name} must be a whole number, not {value!r}") from None


def as_number(value: Any, name: str) -> float:
    try:
        return float(str(value).strip())
    except ValueError:
        raise FatalError(f"{name} must be a number, not {value!r}") from None


class SendPulseAction(Action[ParamsT]):
    """A call to the SendPulse API through the connection's client (its limiter, its token)."""

    provider: ClassVar[Provider | None] = "sendpulse"

    async def run(self, ctx: ActionContext, event: StoredEvent, params: ParamsT) -> ActionResult:
        """Call SendPulse once (the client retries blips within its own budget)."""
        if ctx.providers is None or ctx.connection_id is None:
            raise FatalError("no SendPulse connection is available to this action")
        client = ctx.providers.sendpulse(ctx.connection_id)
        return await self.call(client, params)

    async def call(self, client: Any, params: ParamsT) -> ActionResult:
        raise NotImplementedError
