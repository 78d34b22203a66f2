"""``sendpulse.subscriber_added``: an email joined a mailing list."""

from __future__ import annotations

from typing import ClassVar

from pydantic import PositiveInt

from connector.plugins import PluginParams, Strategy, Trigger


class Params(PluginParams):
    mailing_list_id: PositiveInt


class SubscriberAdded(Trigger):
    """An email that was not in the mailing list at the last poll and is now."""

    key: ClassVar[str] = "sendpulse.subscriber_added"
    Params = Params
    scope: ClassVar[str] = "emails"
    strategy: ClassVar[Strategy] = "snapshot"
    payload_fields = frozenset({"email", "mailing_list_id", "status", "phone", "variables"})
    summary = "a subscriber joined a mailing list"
