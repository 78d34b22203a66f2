"""``sendpulse.remove_subscriber``: delete an email from a mailing list."""

from __future__ import annotations

from typing import Any, ClassVar

from actions.sendpulse._base import Number, SendPulseAction, as_int
from connector.plugins import ActionResult, PluginParams


class Params(PluginParams):
    mailing_list_id: Number
    email: str


class RemoveSubscriber(SendPulseAction[Params]):
    """DELETE /addressbooks/{id}/emails."""

    key: ClassVar[str] = "sendpulse.remove_subscriber"
    scope: ClassVar[str | None] = "emails"
    summary = "remove an email from a mailing list"

    async def call(self, client: Any, params: Params) -> ActionResult:
        list_id = as_int(params.mailing_list_id, "mailing_list_id")
        await client.request(
            "DELETE", f"/addressbooks/{list_id}/emails", json={"emails": [params.email]}
        )
        return ActionResult(summary=f"removed {params.email} from list {list_id}")
