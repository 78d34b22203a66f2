"""``sendpulse.subscriber_removed``: an email left a mailing list (deleted from it)."""

from __future__ import annotations

from typing import ClassVar

from connector.plugins import SnapshotChange, Strategy
from triggers.sendpulse._subscribers import ListParams, SubscriberTrigger


class SubscriberRemoved(SubscriberTrigger):
    """An email that was in the mailing list at the last poll and is gone now."""

    key: ClassVar[str] = "sendpulse.subscriber_removed"
    Params = ListParams
    strategy: ClassVar[Strategy] = "snapshot"
    emits: ClassVar[frozenset[SnapshotChange]] = frozenset({"removed"})
    payload_fields = frozenset({"email", "mailing_list_id"})
    summary = "a subscriber was removed from a mailing list"
    api_calls = ("GET /addressbooks/{id}/emails (limit 100, every page)",)
