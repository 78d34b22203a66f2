"""Typed views of SendPulse replies (reference §2 to §6), read leniently."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from connector.http_client.parsing import LaxDatetime, LaxFloat, LaxInt, Lenient


class MailingList(Lenient):
    """An address book: GET /addressbooks[/{id}]."""

    id: int
    name: str
    all_email_qty: LaxInt = None
    active_email_qty: LaxInt = None
    inactive_email_qty: LaxInt = None
    creationdate: LaxDatetime = None
    status: LaxInt = None
    status_explain: str | None = None


def _variables(value: Any) -> dict[str, Any]:
    # Lists return {name: value}; the single-email call returns [{name, type, value}].
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        out: dict[str, Any] = {}
        for item in value:
            if isinstance(item, dict) and "name" in item:
                out[str(item["name"])] = item.get("value")
        return out
    raise ValueError("variables are neither a mapping nor a list of {name, value}")


class Subscriber(Lenient):
    """One email of a mailing list: GET /addressbooks/{id}/emails[/{email}]."""

    email: str
    status: LaxInt = None
    status_explain: str | None = None
    phone: str | int | None = None
    variables: dict[str, Any] = Field(default_factory=dict)

    @field_validator("variables", mode="before")
    @classmethod
    def _vars(cls, value: Any) -> dict[str, Any]:
        return _variables(value)


class CampaignMessage(Lenient):
    sender_name: str | None = None
    sender_email: str | None = None
    subject: str | None = None
    list_id: LaxInt = None


class Campaign(Lenient):
    """A bulk campaign: GET /campaigns[/{id}]."""

    id: int
    name: str | None = None
    status: LaxInt = None
    message: CampaignMessage | None = None
    all_email_qty: LaxInt = None
    send_date: LaxDatetime = None

    @field_validator("message", mode="before")
    @classmethod
    def _message(cls, value: Any) -> Any:
        return None if value in ([], "") else value


class SmtpEmail(Lenient):
    """A transactional email: GET /smtp/emails."""

    id: str
    sender: str | None = None
    recipient: str | None = None
    subject: str | None = None
    send_date: LaxDatetime = None
    smtp_answer_code: LaxInt = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class Total(Lenient):
    total: LaxInt = 0


class Created(Lenient):
    """``{id}`` or ``{result, id}`` after a create call."""

    id: LaxInt = None
    result: bool | None = None


class Sender(Lenient):
    email: str
    name: str | None = None
    status: str | int | None = None


class Balance(Lenient):
    currency: str | None = None
    balance_currency: LaxFloat = None
