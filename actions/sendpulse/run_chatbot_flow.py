"""``sendpulse.run_chatbot_flow``: start a chatbot flow for a contact."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from actions.sendpulse._base import SendPulseAction
from connector.plugins import ActionResult, PluginParams
from connector.providers.chatbots_api import CHANNELS, ChannelName, run_flow


class Params(PluginParams):
    channel: ChannelName
    contact_id: str
    flow_id: str
    external_data: dict[str, str | int | float] = Field(default_factory=dict)


class RunChatbotFlow(SendPulseAction[Params]):
    """POST {channel base}/flows/run (``/live-chat``, ``/viber/chatbots``, ``/telegram``...)."""

    key: ClassVar[str] = "sendpulse.run_chatbot_flow"
    scope: ClassVar[str | None] = "chatbots"
    summary = "run a chatbot flow for a contact"

    async def call(self, client: Any, params: Params) -> ActionResult:
        channel = CHANNELS[params.channel]
        external = dict(params.external_data)
        await run_flow(client, channel, params.contact_id, params.flow_id, external)
        return ActionResult(
            summary=f"ran {params.channel} flow {params.flow_id} for {params.contact_id}"
        )
