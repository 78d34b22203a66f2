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


class AddPhoneToList(SendPulseAction):
    """POST /sms/numbers (with variables, the phones go as a map of number to variables)."""

    key: ClassVar[str] = "sendpulse.add_phone_to_list"
    Params = Params
    scope: ClassVar[str | None] = "sms"
    summary = "add a phone number to a mailing list"

    async def call(self, client: Any, params: Any) -> ActionResult:
        list_id = as_int(params.mailing_list_id, "mailing_list_id")
        phone = params.phone.strip().lstrip("+").replace(" ", "")
        phones: Any = {phone: dict(params.variables)} if params.variables else [phone]
        reply = await client.request(
            "POST", "/sms/numbers", json={"addressBookId": list_id, "phones": phones}
        )
        counters = reply.get("counters", {}) if isinstance(reply, dict) else {}
        if counters.get("exceptions"):
            raise FatalError(f"SendPulse refused the phone number {phone!r}")
        state = "already there" if counters.get("exists") else "added"
        return ActionResult(summary=f"{state}: {phone} in list {list_id}")
