"""``sendpulse.unsubscribe_subscriber``: mark an email unsubscribed in a mailing list."""

from __future__ import annotations

from typing import Any, ClassVar

from actions.sendpulse._base import Number, SendPulseAction, as_int
from connector.plugins import ActionResult, PluginParams


class Params(PluginParams):
    mailing_list_id: Number
    email: str


class UnsubscribeSubscriber(SendPulseAction[Params]):
    """POST /addressbooks/{id}/emails/unsubscribe."""

    key: ClassVar[str] = "sendpulse.unsubscribe_subscriber"
    scope: ClassVar[str | None] = "emails"
    summary = "unsubscribe an email from a mailing list"

    async def call(self, client: Any, params: Params) -> ActionResult:
        list_id = as_int(params.mailing_list_id, "mailing_list_id")
        await client.request(
            "POST",
            f"/addressbooks/{list_id}/emails/unsubscribe",
            json={"emails": [params.email]},
        )
        return ActionResult(summary=f"unsubscribed {params.email} from list {list_id}")
