"""``sendpulse.subscriber_added``: an email joined a mailing list."""

from __future__ import annotations

from typing import ClassVar

from connector.plugins import SnapshotChange, Strategy
from triggers.sendpulse._subscribers import ListParams, SubscriberTrigger

Params = ListParams


class SubscriberAdded(SubscriberTrigger):
    """An email that was not in the mailing list at the last poll and is now."""

    key: ClassVar[str] = "sendpulse.subscriber_added"
    Params = ListParams
    strategy: ClassVar[Strategy] = "snapshot"
    emits: ClassVar[frozenset[SnapshotChange]] = frozenset({"added"})
    summary = "a subscriber joined a mailing list"
    api_calls = ("GET /addressbooks/{id}/emails (limit 100, every page, overlapping by one row)",)
