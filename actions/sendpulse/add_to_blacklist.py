"""``sendpulse.add_to_blacklist``: put an email on the account's blacklist."""

from __future__ import annotations

import base64
from typing import Any, ClassVar

from actions.sendpulse._base import SendPulseAction
from connector.plugins import ActionResult, PluginParams


class Params(PluginParams):
    email: str
    comment: str = ""


class AddToBlacklist(SendPulseAction[Params]):
    """POST /blacklist; SendPulse wants the emails as Base64 of a comma-separated list."""

    key: ClassVar[str] = "sendpulse.add_to_blacklist"
    scope: ClassVar[str | None] = "emails"
    summary = "blacklist an email"

    async def call(self, client: Any, params: Params) -> ActionResult:
        encoded = base64.b64encode(params.email.strip().encode()).decode()
        body = {"emails": encoded, "comment": params.comment}
        await client.request("POST", "/blacklist", json=body)
        return ActionResult(summary=f"blacklisted {params.email}")
