"""``sendpulse.subscriber_unsubscribed``: a subscriber of a list unsubscribed.

Only inactive subscribers can have unsubscribed, so the poll asks for those alone
(``not_active=1``): on a healthy list that is a page or two instead of the whole list. A
subscriber who becomes active again leaves that subset and, on unsubscribing again, enters it
again, which is a new event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from connector.plugins import Item, SnapshotChange, Strategy
from triggers.sendpulse._subscribers import (
    SUBSCRIBER_FIELDS,
    UNSUBSCRIBED,
    ListParams,
    SubscriberTrigger,
)


class SubscriberUnsubscribed(SubscriberTrigger):
    """A subscriber whose status became unsubscribed (from the list, or from all lists)."""

    key: ClassVar[str] = "sendpulse.subscriber_unsubscribed"
    Params = ListParams
    strategy: ClassVar[Strategy] = "fingerprint"
    emits: ClassVar[frozenset[SnapshotChange]] = frozenset({"added", "changed"})
    inactive_only: ClassVar[bool] = True
    payload_fields = SUBSCRIBER_FIELDS
    summary = "a subscriber unsubscribed from a mailing list"
    api_calls = (
        "GET /addressbooks/{id}/emails?not_active=1 (limit 100, every page, one row overlap)",
    )

    def fingerprint_of(self, item: Item) -> str:
        return str(item.get("status"))

    def wants(self, kind: Any, payload: Mapping[str, Any]) -> bool:
        return payload.get("status") in UNSUBSCRIBED
