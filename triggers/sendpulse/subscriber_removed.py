"""``sendpulse.subscriber_removed``: an email left a mailing list (deleted from it).

The list is paged by offset, so a list changing while it is paged can shift a row past the
poll; such a row looks removed. Each candidate is therefore checked with
``GET /addressbooks/{id}/emails/{email}`` before it becomes an event: one call per removal,
and never a removal that did not happen.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from connector.http_client.api_errors import NotFound, UnexpectedResponse
from connector.plugins import ApiClient, SnapshotChange, Strategy
from triggers.sendpulse._subscribers import ListParams, SubscriberTrigger


class SubscriberRemoved(SubscriberTrigger):
    """An email that was in the mailing list at the last poll and is gone now."""

    key: ClassVar[str] = "sendpulse.subscriber_removed"
    Params = ListParams
    strategy: ClassVar[Strategy] = "snapshot"
    emits: ClassVar[frozenset[SnapshotChange]] = frozenset({"removed"})
    enriches: ClassVar[bool] = True
    payload_fields = frozenset({"email", "mailing_list_id"})
    summary = "a subscriber was removed from a mailing list"
    api_calls = (
        "GET /addressbooks/{id}/emails (limit 100, every page, overlapping by one row)",
        "GET /addressbooks/{id}/emails/{email} per removal found (to confirm it)",
    )

    async def enrich(
        self, client: ApiClient, kind: SnapshotChange, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        path = f"{self.path}/{quote(str(payload['email']), safe='@')}"
        try:
            found = await client.request("GET", path)
        except NotFound:
            return payload
        # A 200 must be the subscriber; anything else would silently cancel every removal.
        if (
            not isinstance(found, dict)
            or str(found.get("email", "")).lower() != str(payload["email"]).lower()
        ):
            raise UnexpectedResponse(f"{path}: a 200 that is not the subscriber asked for")
        # Still there: the paging missed it, it did not leave.
        return None
