"""``sendpulse.send_email``: send one transactional email over SMTP (HTML/text or template)."""

from __future__ import annotations

import base64
import html as markup
from typing import Annotated, Any, ClassVar

from pydantic import Field, model_validator

from actions.sendpulse._base import Number, SendPulseAction, as_int
from connector.plugins import ActionResult, PluginParams
from connector.templates import AS_HTML


class Params(PluginParams):
    to: str
    to_name: str | None = None
    from_email: str
    from_name: str = ""
    # Required by ``POST /smtp/emails`` even with a template (the template's own is not used).
    subject: str = Field(min_length=1)
    # Event values are HTML-escaped: subscribers write them, and the HTML is ours.
    html: Annotated[str | None, AS_HTML] = None
    text: str | None = None
    template_id: Number | None = None
    variables: dict[str, str | int | float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _body(self) -> Params:
        if self.template_id is None and not (self.html or self.text):
            raise ValueError("give html and/or text, or a template_id")
        if self.template_id is not None and (self.html or self.text):
            raise ValueError("give either a template_id or html/text, not both")
        if self.variables and self.template_id is None:
            raise ValueError("variables go with a template_id")
        return self


class SendEmail(SendPulseAction[Params]):
    """POST /smtp/emails with ``{email: {...}}``; the HTML goes Base64-encoded.

    The body is either a template, or both ``html`` and ``text`` (the file requires both): a
    missing text is made from the HTML by SendPulse (``auto_plain_text``), a missing HTML is
    the text, escaped, with its line breaks.
    """

    key: ClassVar[str] = "sendpulse.send_email"
    scope: ClassVar[str | None] = "smtp"
    summary = "send a transactional email (SMTP)"

    async def call(self, client: Any, params: Params) -> ActionResult:
        recipient: dict[str, str] = {"email": params.to}
        if params.to_name:
            recipient["name"] = params.to_name
        email: dict[str, Any] = {
            "from": {"name": params.from_name, "email": params.from_email},
            "to": [recipient],
            "subject": params.subject,
        }
        if params.template_id is not None:
            template_id = as_int(params.template_id, "template_id")
            email["template"] = {"id": template_id, "variables": dict(params.variables)}
        else:
            html = params.html
            if html is None:
                html = "<p>" + markup.escape(params.text or "").replace("\n", "<br>") + "</p>"
            email["html"] = base64.b64encode(html.encode()).decode()
            email["text"] = params.text or ""
            if not params.text:
                email["auto_plain_text"] = True
        reply = await client.request("POST", "/smtp/emails", json={"email": email})
        sent_id = reply.get("id") if isinstance(reply, dict) else None
        return ActionResult(summary=f"emailed {params.to} (smtp id {sent_id})")
