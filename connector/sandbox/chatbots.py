"""Chatbots: bots per channel, their contacts, dialogs and what was sent to them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.clock import fmt_chatbot

# channel -> (base path, the hub's `service` number), as the channel files give them.
CHANNEL_PATHS = {
    "messenger": ("messenger", 1),
    "telegram": ("telegram", 3),
    "whatsapp": ("whatsapp", 4),
    "instagram": ("instagram", 5),
    "viber": ("viber/chatbots", 6),
    "livechat": ("live-chat", 7),
    "tiktok": ("tiktok", 8),
}
CHANNELS = tuple(CHANNEL_PATHS)
BY_BASE = {base: name for name, (base, _) in CHANNEL_PATHS.items()}


def object_id(serial: int, kind: int) -> str:
    """24 hex digits like SendPulse's (Mongo-style) ids; grows with `serial`."""
    return f"{kind:08x}{serial:016x}"


def channel_data(channel: str, first_name: str, username: str) -> dict[str, Any]:
    """The contact's `channel_data` in its channel's own shape (each channel file differs)."""
    if channel in ("telegram", "whatsapp"):
        return {"first_name": first_name, "username": username, "name": first_name}
    if channel == "messenger":
        return {"id": username, "name": first_name, "first_name": first_name}
    if channel == "instagram":
        return {"user_name": username, "first_name": first_name, "name": first_name}
    if channel == "livechat":
        return {"full_name": first_name}
    if channel == "viber":
        return {"name": first_name}
    return {"display_name": first_name, "username": username}  # tiktok


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
            "channel_data": {"name": self.name, "username": self.name.lower().replace(" ", "_")},
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
    # The latest message each way: (text, time), as the dialog rows show them.
    last_inbox: tuple[str, float] | None = None
    last_outbox: tuple[str, float] | None = None

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "bot_id": self.bot_id,
            "status": self.status,
            "channel_data": channel_data(self.channel, self.first_name, self.username),
            "tags": list(self.tags),
            "variables": dict(self.variables),
            "is_chat_opened": True,
            "last_activity_at": fmt_chatbot(self.last_activity),
            "created_at": fmt_chatbot(self.created),
        }

    @property
    def inbox_position(self) -> float:
        """Where the dialog sorts: its latest incoming message, else its creation."""
        return self.last_inbox[1] if self.last_inbox else self.created

    def dialog(self, dialog_id: str) -> dict[str, Any]:
        """The `/chatbots/dialogs` row of this contact's dialog (the hub's `Dialog`)."""
        row: dict[str, Any] = {
            "_id": dialog_id,
            "bot_id": self.bot_id,
            "contact": {"id": self.id, "full_name": self.first_name},
            "service": CHANNEL_PATHS[self.channel][1],
            "user_id": 1,
            "inbox_unread_count": 0,
            "is_chat_opened": True,
            "created_at": fmt_chatbot(self.created),
            "updated_at": fmt_chatbot(self.last_activity),
        }
        for key, last in (
            ("last_inbox_message", self.last_inbox),
            ("last_outbox_message", self.last_outbox),
        ):
            if last is not None:
                row[key] = {"text": last[0], "date": fmt_chatbot(last[1])}
        return row


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
            "status": 1,
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
    # What `contacts/send` was given, as sent: (channel, contact id, body).
    sent: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    serial: int = 0

    def _next(self) -> int:
        self.serial += 1
        return self.serial

    def add_bot(self, channel: str, name: str, now: float) -> Bot:
        if channel not in CHANNEL_PATHS:
            raise ValueError(f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}")
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
        if direction == 1:
            contact.last_inbox = (text, now)
        else:
            contact.last_outbox = (text, now)
        return message

    def dialog_id(self, contact: ChatContact) -> str:
        """A dialog per contact: its id is the contact's with another kind."""
        return "d1" + contact.id[2:]
