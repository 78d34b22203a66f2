"""``sendpulse.subscriber_status_changed``: a subscriber's status changed (optionally ``to:``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from connector.plugins import Item, SnapshotChange, Strategy
from triggers.sendpulse._subscribers import SUBSCRIBER_FIELDS, StatusParams, SubscriberTrigger


class SubscriberStatusChanged(SubscriberTrigger):
    """A subscriber of the list whose status differs from the last poll's."""

    key: ClassVar[str] = "sendpulse.subscriber_status_changed"
    Params = StatusParams
    params: StatusParams
    strategy: ClassVar[Strategy] = "fingerprint"
    emits: ClassVar[frozenset[SnapshotChange]] = frozenset({"changed"})
    payload_fields = SUBSCRIBER_FIELDS | {"previous_status"}
    summary = "a subscriber's status changed"
    api_calls = ("GET /addressbooks/{id}/emails (limit 100, every page, overlapping by one row)",)

    def fingerprint_of(self, item: Item) -> str:
        # The status itself, not a hash: it is short, and the event can say what it was.
        return str(item.get("status"))

    def changed_payload(self, payload: dict[str, Any], previous: str | None) -> dict[str, Any]:
        before: Any = int(previous) if previous and previous.lstrip("-").isdigit() else previous
        return {**payload, "previous_status": before}

    def wants(self, kind: Any, payload: Mapping[str, Any]) -> bool:
        return self.params.to is None or payload.get("status") == self.params.to
