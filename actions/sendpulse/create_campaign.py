"""``sendpulse.create_campaign``: create (send or schedule) a campaign to a mailing list."""

from __future__ import annotations

import base64
from typing import Annotated, Any, ClassVar

from pydantic import model_validator

from actions.sendpulse._base import Number, SendPulseAction, as_int
from connector.plugins import ActionResult, PluginParams
from connector.templates import AS_HTML


class Params(PluginParams):
    mailing_list_id: Number
    sender_name: str
    sender_email: str
    subject: str
    # Event values are HTML-escaped: subscribers write them, and the HTML is ours.
    html: Annotated[str | None, AS_HTML] = None
    template_id: Number | None = None
    # ``name`` names the action itself in a flow file, hence campaign_name.
    campaign_name: str | None = None
    # "YYYY-MM-DD hh:mm:ss", not in the past; empty sends now.
    send_date: str | None = None

    @model_validator(mode="after")
    def _body(self) -> Params:
        if (self.html is None) == (self.template_id is None):
            raise ValueError("give exactly one of html or template_id")
        return self


class CreateCampaign(SendPulseAction[Params]):
    """POST /campaigns; SendPulse allows 4 an hour, past that the delivery waits and retries."""

    key: ClassVar[str] = "sendpulse.create_campaign"
    scope: ClassVar[str | None] = "emails"
    summary = "create a campaign to a mailing list"

    async def call(self, client: Any, params: Params) -> ActionResult:
        list_id = as_int(params.mailing_list_id, "mailing_list_id")
        body: dict[str, Any] = {
            "sender_name": params.sender_name,
            "sender_email": params.sender_email,
            "subject": params.subject,
            "list_id": list_id,
        }
        if params.html is not None:
            body["body"] = base64.b64encode(params.html.encode()).decode()
        else:
            body["template_id"] = as_int(params.template_id, "template_id")
        if params.campaign_name:
            body["name"] = params.campaign_name
        if params.send_date:
            body["send_date"] = params.send_date
        reply = await client.request("POST", "/campaigns", json=body)
        campaign_id = reply.get("id") if isinstance(reply, dict) else None
        return ActionResult(summary=f"created campaign {campaign_id} to list {list_id}")
