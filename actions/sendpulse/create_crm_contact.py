"""``sendpulse.create_crm_contact``: create a contact in SendPulse CRM."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import model_validator

from actions.sendpulse._base import Number, SendPulseAction, as_int
from connector.plugins import ActionResult, PluginParams


class Params(PluginParams):
    first_name: str = ""
    last_name: str = ""
    email: str | None = None
    phone: str | None = None
    responsible_id: Number | None = None

    @model_validator(mode="after")
    def _name(self) -> Params:
        if not self.first_name and not self.last_name:
            raise ValueError("give first_name or last_name")
        return self


class CreateCrmContact(SendPulseAction):
    """POST /crm/v1/contacts/create. Not idempotent on SendPulse's side: a retry after a
    lost reply can make a second contact."""

    key: ClassVar[str] = "sendpulse.create_crm_contact"
    Params = Params
    scope: ClassVar[str | None] = "crm"
    summary = "create a CRM contact"

    async def call(self, client: Any, params: Any) -> ActionResult:
        body: dict[str, Any] = {"firstName": params.first_name, "lastName": params.last_name}
        if params.responsible_id is not None:
            body["responsibleId"] = as_int(params.responsible_id, "responsible_id")
        if params.email:
            body["emails"] = [{"email": params.email, "isMain": True}]
        if params.phone:
            body["phones"] = [params.phone]
        reply = await client.request("POST", "/crm/v1/contacts/create", json=body)
        data = reply.get("data") if isinstance(reply, dict) else None
        contact_id = data.get("id") if isinstance(data, dict) else None
        name = f"{params.first_name} {params.last_name}".strip()
        return ActionResult(summary=f"created CRM contact {contact_id} ({name})")
