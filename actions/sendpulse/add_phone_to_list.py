"""``sendpulse.add_phone_to_list``: add a phone number to a mailing list (for SMS)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from actions.sendpulse._base import Number, SendPulseAction, as_int
from connector.errors import FatalError
from connector.plugins import ActionResult, PluginParams


class Params(PluginParams):
    mailing_list_id: Number
    phone: str
    variables: dict[str, str | int | float] = Field(default_factory=dict)


def variable_rows(variables: dict[str, str | int | float]) -> list[dict[str, str]]:
    """``/sms/numbers/variables``' shape of one phone's variables: ``{name, type, value}``."""
    return [
        {
            "name": name,
            "type": "number" if isinstance(value, int | float) else "string",
            "value": str(value),
        }
        for name, value in variables.items()
    ]


class AddPhoneToList(SendPulseAction[Params]):
    """POST /sms/numbers with a list of phones, or, with variables, POST
    /sms/numbers/variables with ``{phone: [[{name, type, value}, ...]]}``."""

    key: ClassVar[str] = "sendpulse.add_phone_to_list"
    scope: ClassVar[str | None] = "sms"
    summary = "add a phone number to a mailing list"

    async def call(self, client: Any, params: Params) -> ActionResult:
        list_id = as_int(params.mailing_list_id, "mailing_list_id")
        phone = params.phone.strip().lstrip("+").replace(" ", "")
        if params.variables:
            body = {"addressBookId": list_id, "phones": {phone: [variable_rows(params.variables)]}}
            reply = await client.request("POST", "/sms/numbers/variables", json=body)
            # This one answers a list of results (one per batch).
            reply = reply[0] if isinstance(reply, list) and reply else reply
        else:
            body = {"addressBookId": list_id, "phones": [phone]}
            reply = await client.request("POST", "/sms/numbers", json=body)
        counters = reply.get("counters", {}) if isinstance(reply, dict) else {}
        if counters.get("exceptions"):
            raise FatalError(f"SendPulse refused the phone number {phone!r}")
        state = "already there" if counters.get("exists") else "added"
        return ActionResult(summary=f"{state}: {phone} in list {list_id}")
