"""Chatbots: bots per channel, their contacts, dialogs and what was sent to them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.clock import fmt_chatbot

CHANNELS = ("telegram", "whatsapp", "instagram", "messenger", "viber", "livechat", "tiktok")


def object_id(serial: int, kind: int) -> str:
    """24 hex digits like SendPulse's (Mongo-style) ids; grows with `serial`."""
    return f"{kind:08x}{serial:016x}"


@dataclass
class Bot:
    id: str
    channel: str
    name: str
    created: float
    status: int = 3

    def json(self, total: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel_data": {"name": self.name, "channel": self.channel},
            "inbox": {"total": total, "unread": 0},
            "status": self.status,
            "created_at": fmt_chatbot(self.created),
        }


@dataclass
class ChatContact:
    id: str
    bot_id: str
    channel: str
    first_name: str
    username: str
    created: float
    last_activity: float
    status: int = 1
    tags: list[str] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "bot_id": self.bot_id,
            "status": self.status,
            "channel_data": {"first_name": self.first_name, "username": self.username},
            "tags": list(self.tags),
            "variables": dict(self.variables),
            "last_activity_at": fmt_chatbot(self.last_activity),
            "created_at": fmt_chatbot(self.created),
        }


@dataclass
class Message:
    id: str
    contact_id: str
    bot_id: str
    direction: int  # 1 incoming, 2 outgoing
    text: str
    created: float

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "contact_id": self.contact_id,
            "bot_id": self.bot_id,
            "direction": self.direction,
            "data": {"type": "text", "text": self.text},
            "created_at": fmt_chatbot(self.created),
        }


@dataclass
class Chatbots:
    """Bots, contacts (ids grow with creation), messages and flow runs."""

    bots: dict[str, Bot] = field(default_factory=dict)
    contacts: dict[str, ChatContact] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    flow_runs: list[dict[str, Any]] = field(default_factory=list)
    serial: int = 0

    def _next(self) -> int:
        self.serial += 1
        return self.serial

    def add_bot(self, channel: str, name: str, now: float) -> Bot:
        bot = Bot(object_id(self._next(), 0xB07), channel, name, now)
        self.bots[bot.id] = bot
        return bot

    def add_contact(
        self,
        bot_id: str,
        first_name: str,
        now: float,
        *,
        tags: list[str] | None = None,
        variables: dict[str, Any] | None = None,
    ) -> ChatContact:
        bot = self.bots[bot_id]
        contact = ChatContact(
            id=object_id(self._next(), 0xC0),
            bot_id=bot_id,
            channel=bot.channel,
            first_name=first_name,
            username=first_name.lower(),
            created=now,
            last_activity=now,
            tags=tags or [],
            variables=variables or {},
        )
        self.contacts[contact.id] = contact
        return contact

    def add_message(self, contact: ChatContact, text: str, direction: int, now: float) -> Message:
        serial = object_id(self._next(), 0x3E)
        message = Message(serial, contact.id, contact.bot_id, direction, text, now)
        self.messages.append(message)
        contact.last_activity = now
        return message
