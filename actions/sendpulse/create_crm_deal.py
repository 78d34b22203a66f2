"""``sendpulse.create_crm_deal``: create a deal in a SendPulse CRM pipeline."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from actions.sendpulse._base import Number, SendPulseAction, as_int, as_number
from connector.plugins import ActionResult, PluginParams


class Params(PluginParams):
    pipeline_id: Number
    step_id: Number
    # ``name`` names the action itself in a flow file, hence deal_name.
    deal_name: str
    price: Number | float = 0
    currency: str = "USD"
    contact_ids: list[Number] = Field(default_factory=list)


class CreateCrmDeal(SendPulseAction[Params]):
    """POST /crm/v1/deals. Not idempotent on SendPulse's side (see create_crm_contact)."""

    key: ClassVar[str] = "sendpulse.create_crm_deal"
    scope: ClassVar[str | None] = "crm"
    summary = "create a CRM deal"

    async def call(self, client: Any, params: Params) -> ActionResult:
        body = {
            "pipelineId": as_int(params.pipeline_id, "pipeline_id"),
            "stepId": as_int(params.step_id, "step_id"),
            "name": params.deal_name,
            "price": as_number(params.price, "price"),
            "currency": params.currency,
            "contact": [as_int(c, "contact_ids") for c in params.contact_ids],
        }
        reply = await client.request("POST", "/crm/v1/deals", json=body)
        data = reply.get("data") if isinstance(reply, dict) else None
        deal_id = data.get("id") if isinstance(data, dict) else None
        return ActionResult(summary=f"created CRM deal {deal_id} ({params.deal_name})")
