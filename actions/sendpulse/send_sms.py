"""``sendpulse.send_sms``: send an SMS to one phone number."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from actions.sendpulse._base import SendPulseAction
from connector.plugins import ActionResult, PluginParams


class Params(PluginParams):
    sender: str = Field(max_length=11)
    phone: str
    body: str = Field(min_length=1)


class SendSms(SendPulseAction[Params]):
    """POST /sms/send."""

    key: ClassVar[str] = "sendpulse.send_sms"
    scope: ClassVar[str | None] = "sms"
    summary = "send an SMS"

    async def call(self, client: Any, params: Params) -> ActionResult:
        phone = params.phone.strip().lstrip("+").replace(" ", "")
        body = {"sender": params.sender, "phones": [phone], "body": params.body}
        reply = await client.request("POST", "/sms/send", json=body)
        campaign = reply.get("campaign_id") if isinstance(reply, dict) else None
        return ActionResult(summary=f"sent an SMS to {phone} (campaign {campaign})")
