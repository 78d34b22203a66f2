"""The trigger registry: an explicit list, so the catalogue can be read off this file."""

from connector.plugins import Registry, Trigger
from triggers.sendpulse.subscriber_added import SubscriberAdded

TRIGGERS: Registry[type[Trigger]] = Registry(
    "trigger",
    [
        SubscriberAdded,
    ],
)
