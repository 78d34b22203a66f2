"""``sendpulse.add_subscriber``: add (or update) an email in a mailing list."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from actions.sendpulse._base import Number, SendPulseAction, as_int
from connector.plugins import ActionResult, PluginParams


class Params(PluginParams):
    mailing_list_id: Number
    email: str
    phone: str | None = None
    variables: dict[str, str | int | float] = Field(default_factory=dict)
    # single: added as active at once; double: SendPulse mails a confirmation link first.
    opt_in: Literal["single", "double"] = "single"
    sender_email: str | None = None
    template_id: str | None = None
    message_lang: str = "en"

    @model_validator(mode="after")
    def _double(self) -> Params:
        if self.opt_in == "double" and self.sender_email is None:
            raise ValueError("a double opt-in needs sender_email (the confirmation's sender)")
        return self


class AddSubscriber(SendPulseAction[Params]):
    """POST /addressbooks/{id}/emails: an upsert, so running it twice is harmless."""

    key: ClassVar[str] = "sendpulse.add_subscriber"
    scope: ClassVar[str | None] = "emails"
    summary = "add an email to a mailing list (single or double opt-in)"

    async def call(self, client: Any, params: Params) -> ActionResult:
        list_id = as_int(params.mailing_list_id, "mailing_list_id")
        variables: dict[str, Any] = dict(params.variables)
        if params.phone:
            variables["Phone"] = params.phone
        entry: dict[str, Any] = {"email": params.email}
        if variables:
            entry["variables"] = variables
        body: dict[str, Any] = {"emails": [entry]}
        if params.opt_in == "double":
            body.update(confirmation="force", sender_email=params.sender_email)
            body["message_lang"] = params.message_lang
            if params.template_id:
                body["template_id"] = params.template_id
        await client.request("POST", f"/addressbooks/{list_id}/emails", json=body)
        how = "double opt-in requested" if params.opt_in == "double" else "active"
        return ActionResult(summary=f"added {params.email} to list {list_id} ({how})")
