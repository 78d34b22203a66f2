"""``sendpulse.fire_automation_event``: fire an Automation 360 event (starts its flows)."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field, model_validator

from actions.sendpulse._base import SendPulseAction
from connector.plugins import ActionResult, PluginParams


class Params(PluginParams):
    event: str = Field(min_length=1)
    email: str | None = None
    phone: str | None = None
    variables: dict[str, str | int | float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _who(self) -> Params:
        if not self.email and not self.phone:
            raise ValueError("give email or phone (or both)")
        return self


class FireAutomationEvent(SendPulseAction[Params]):
    """POST /events/name/{event} with the email and/or phone and the event's variables."""

    key: ClassVar[str] = "sendpulse.fire_automation_event"
    scope: ClassVar[str | None] = "automation"
    summary = "fire an Automation 360 event"

    async def call(self, client: Any, params: Params) -> ActionResult:
        body: dict[str, Any] = dict(params.variables)
        if params.email:
            body["email"] = params.email
        if params.phone:
            body["phone"] = params.phone
        await client.request("POST", f"/events/name/{quote(params.event, safe='')}", json=body)
        who = params.email or params.phone
        return ActionResult(summary=f"fired {params.event} for {who}")
