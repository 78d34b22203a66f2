"""``sendpulse.send_chatbot_message``: send a text to a chatbot contact."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from actions.sendpulse._base import SendPulseAction
from connector.plugins import ActionResult, PluginParams

Channel = Literal["telegram", "whatsapp", "instagram", "messenger", "viber", "livechat", "tiktok"]


class Params(PluginParams):
    channel: Channel
    contact_id: str
    text: str = Field(min_length=1)


class SendChatbotMessage(SendPulseAction):
    """POST /{channel}/contacts/sendText."""

    key: ClassVar[str] = "sendpulse.send_chatbot_message"
    Params = Params
    scope: ClassVar[str | None] = "chatbots"
    summary = "send a chatbot message to a contact"

    async def call(self, client: Any, params: Any) -> ActionResult:
        body = {"contact_id": params.contact_id, "text": params.text}
        await client.request("POST", f"/{params.channel}/contacts/sendText", json=body)
        return ActionResult(summary=f"sent a {params.channel} message to {params.contact_id}")
