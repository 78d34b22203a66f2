"""Transactional (SMTP) email: sent records, bounces and the SMTP unsubscribe list."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.clock import fmt_date, fmt_datetime

# Recipients at this domain bounce, so tests can produce bounces on purpose.
BOUNCE_DOMAIN = "bounce.example.com"
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 36)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits))


def message_id(serial: int) -> str:
    """An id shaped like SendPulse's (`pzkic9-0afezp-fc`); unique, but not in sort order."""
    scrambled = (serial * 2_654_435_761) % (36**6)
    return f"{_base36(scrambled, 6)}-{_base36(serial, 6)}-{_base36(serial * 7, 2)}"


@dataclass
class SentEmail:
    """One message to one recipient."""

    id: str
    sender: str
    recipient: str
    subject: str
    send_date: float
    size: int
    bounced: bool

    def json(self) -> dict[str, Any]:
        code = 550 if self.bounced else 250
        return {
            "id": self.id,
            "sender": self.sender,
            "total_size": self.size,
            "sender_ip": "127.0.0.1",
            "smtp_answer_code": code,
            "smtp_answer_code_explain": "Bounced" if self.bounced else "Delivered",
            "smtp_answer_subcode": "5.1.1" if self.bounced else "",
            "smtp_answer_data": "User unknown" if self.bounced else "OK",
            "used_ip": "127.0.0.1",
            "recipient": self.recipient,
            "subject": self.subject,
            "send_date": fmt_datetime(self.send_date),
            "tracking": {"click": 0, "open": 0, "link": [], "client_info": []},
        }

    def bounce_json(self) -> dict[str, Any]:
        return {
            "email_to": self.recipient,
            "sender": self.sender,
            "send_date": fmt_datetime(self.send_date),
            "subject": self.subject,
            "smtp_answer_code": 550,
            "smtp_answer_subcode": "5.1.1",
            "smtp_answer_data": "User unknown",
        }


@dataclass
class SmtpUnsubscribe:
    email: str
    at: float
    by_link: bool
    by_user: bool
    spam: bool
    comment: str = ""

    def json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "unsubscribe_by_link": int(self.by_link),
            "unsubscribe_by_user": int(self.by_user),
            "spam_complaint": int(self.spam),
            "date": fmt_datetime(self.at),
        }


@dataclass
class Smtp:
    """Sent messages in send order, with an id index."""

    sent: list[SentEmail] = field(default_factory=list)
    by_id: dict[str, SentEmail] = field(default_factory=dict)
    unsubscribes: dict[str, SmtpUnsubscribe] = field(default_factory=dict)
    serial: int = 0

    def send(
        self, sender: str, recipients: list[str], subject: str, size: int, now: float
    ) -> list[SentEmail]:
        records = []
        for recipient in recipients:
            self.serial += 1
            bounced = recipient.lower().endswith("@" + BOUNCE_DOMAIN)
            record = SentEmail(
                message_id(self.serial), sender, recipient, subject, now, size, bounced
            )
            self.sent.append(record)
            self.by_id[record.id] = record
            records.append(record)
        return records

    def bounces_on(self, day: str) -> list[SentEmail]:
        return [r for r in self.sent if r.bounced and fmt_date(r.send_date) == day]

    def unsubscribe(
        self, email: str, now: float, *, by_link: bool = True, spam: bool = False, comment: str = ""
    ) -> SmtpUnsubscribe:
        entry = SmtpUnsubscribe(email.lower(), now, by_link, not by_link, spam, comment)
        self.unsubscribes[entry.email] = entry
        return entry
