"""``sendpulse.send_chatbot_message``: send a text to a chatbot contact."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from actions.sendpulse._base import SendPulseAction
from connector.plugins import ActionResult, PluginParams
from connector.providers.chatbots_api import CHANNELS, ChannelName, send_text


class Params(PluginParams):
    channel: ChannelName
    contact_id: str
    text: str = Field(min_length=1)


class SendChatbotMessage(SendPulseAction[Params]):
    """POST {channel}/contacts/sendText (Telegram, Messenger) or {channel}/contacts/send."""

    key: ClassVar[str] = "sendpulse.send_chatbot_message"
    scope: ClassVar[str | None] = "chatbots"
    summary = "send a chatbot message to a contact"

    async def call(self, client: Any, params: Params) -> ActionResult:
        await send_text(client, CHANNELS[params.channel], params.contact_id, params.text)
        return ActionResult(summary=f"sent a {params.channel} message to {params.contact_id}")
