"""SMS, web push and Automation 360: the smaller services, kept as plain records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SmsCampaign:
    id: int
    book_id: int | None
    sender: str
    body: str
    phones: list[str]
    send_date: float
    created: float


@dataclass
class PushWebsite:
    id: int
    url: str
    added: float
    status: int = 1


@dataclass
class PushSubscription:
    id: int
    website_id: int
    browser: str
    lang: str
    os: str
    country_code: str
    city: str
    variables: list[dict[str, Any]]
    subscribed: float
    status: int = 1


@dataclass
class PushTask:
    id: int
    website_id: int
    title: str
    body: str
    link: str
    ttl: int
    created: float


@dataclass
class Autoresponder:
    id: int
    name: str
    status: int
    created: float
    changed: float
    flows: list[dict[str, Any]] = field(default_factory=list)
    starts: int = 0
    in_queue: int = 0
    end_count: int = 0
    send_messages: int = 0
    conversions: int = 0


@dataclass
class Channels:
    """SMS campaigns and phones, web-push sites and tasks, A360 autoresponders and events."""

    phones: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)  # book -> phone
    sms: dict[int, SmsCampaign] = field(default_factory=dict)
    websites: dict[int, PushWebsite] = field(default_factory=dict)
    subscriptions: list[PushSubscription] = field(default_factory=list)
    push_tasks: dict[int, PushTask] = field(default_factory=dict)
    autoresponders: dict[int, Autoresponder] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 1

    def new_id(self) -> int:
        value = self.next_id
        self.next_id += 1
        return value
