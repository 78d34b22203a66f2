"""``sendpulse.update_subscriber_variables``: set variables of an email in a mailing list."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from actions.sendpulse._base import Number, SendPulseAction, as_int
from connector.plugins import ActionResult, PluginParams


class Params(PluginParams):
    mailing_list_id: Number
    email: str
    variables: dict[str, str | int | float] = Field(min_length=1)


class UpdateSubscriberVariables(SendPulseAction[Params]):
    """POST /addressbooks/{id}/emails/variable."""

    key: ClassVar[str] = "sendpulse.update_subscriber_variables"
    scope: ClassVar[str | None] = "emails"
    summary = "set variables of a subscriber"

    async def call(self, client: Any, params: Params) -> ActionResult:
        list_id = as_int(params.mailing_list_id, "mailing_list_id")
        body = {
            "email": params.email,
            "variables": [{"name": k, "value": v} for k, v in params.variables.items()],
        }
        await client.request("POST", f"/addressbooks/{list_id}/emails/variable", json=body)
        names = ", ".join(sorted(params.variables))
        return ActionResult(summary=f"set {names} of {params.email} in list {list_id}")
