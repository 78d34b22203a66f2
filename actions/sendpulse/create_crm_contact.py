"""``sendpulse.create_crm_contact``: create a contact in SendPulse CRM.

``POST /crm/v1/contacts/create`` takes the person only (``responsibleId``, required, and
``firstName``, ``lastName``, ``externalContactId``); an email and a phone are added to the new
contact by their own calls, ``POST /crm/v1/contacts/{id}/emails`` and ``.../phones``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import model_validator

from actions.sendpulse._base import Number, SendPulseAction, as_int
from connector.http_client.api_errors import UnexpectedResponse
from connector.plugins import ActionResult, PluginParams

CREATE = "/crm/v1/contacts/create"


class Params(PluginParams):
    responsible_id: Number
    first_name: str = ""
    last_name: str = ""
    email: str | None = None
    phone: str | None = None
    external_contact_id: str | None = None

    @model_validator(mode="after")
    def _name(self) -> Params:
        if not self.first_name and not self.last_name:
            raise ValueError("give first_name or last_name")
        return self


class CreateCrmContact(SendPulseAction[Params]):
    """POST /crm/v1/contacts/create, then the email and the phone. Not idempotent on
    SendPulse's side: a retry after a lost reply can make a second contact."""

    key: ClassVar[str] = "sendpulse.create_crm_contact"
    scope: ClassVar[str | None] = "crm"
    summary = "create a CRM contact"

    async def call(self, client: Any, params: Params) -> ActionResult:
        body: dict[str, Any] = {
            "responsibleId": as_int(params.responsible_id, "responsible_id"),
            "firstName": params.first_name,
            "lastName": params.last_name,
        }
        if params.external_contact_id:
            body["externalContactId"] = params.external_contact_id
        reply = await client.request("POST", CREATE, json=body)
        data = reply.get("data") if isinstance(reply, dict) else None
        contact_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(contact_id, int) or isinstance(contact_id, bool):
            raise UnexpectedResponse(f"{CREATE}: the reply carries no contact id")
        if params.email:
            emails = {"emails": [{"email": params.email, "isMain": True}]}
            await client.request("POST", f"/crm/v1/contacts/{contact_id}/emails", json=emails)
        if params.phone:
            phone = {"phone": params.phone}
            await client.request("POST", f"/crm/v1/contacts/{contact_id}/phones", json=phone)
        name = f"{params.first_name} {params.last_name}".strip()
        return ActionResult(summary=f"created CRM contact {contact_id} ({name})")
