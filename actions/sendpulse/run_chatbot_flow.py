"""``sendpulse.run_chatbot_flow``: start a chatbot flow for a contact."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from actions.sendpulse._base import SendPulseAction
from actions.sendpulse.send_chatbot_message import Channel
from connector.plugins import ActionResult, PluginParams


class Params(PluginParams):
    channel: Channel
    contact_id: str
    flow_id: str
    external_data: dict[str, str | int | float] = Field(default_factory=dict)


class RunChatbotFlow(SendPulseAction):
    """POST /{channel}/flows/run."""

    key: ClassVar[str] = "sendpulse.run_chatbot_flow"
    Params = Params
    scope: ClassVar[str | None] = "chatbots"
    summary = "run a chatbot flow for a contact"

    async def call(self, client: Any, params: Any) -> ActionResult:
        body = {
            "contact_id": params.contact_id,
            "flow_id": params.flow_id,
            "external_data": dict(params.external_data),
        }
        await client.request("POST", f"/{params.channel}/flows/run", json=body)
        return ActionResult(
            summary=f"ran {params.channel} flow {params.flow_id} for {params.contact_id}"
        )
