"""CRM contacts and deals, with the filters and sorting of their get-list calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.clock import fmt_iso


@dataclass
class Contact:
    id: int
    responsible_id: int
    first_name: str
    last_name: str
    emails: list[str]
    phones: list[str]
    created: float
    updated: float

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "responsibleId": self.responsible_id,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "emails": [{"email": e, "isMain": i == 0} for i, e in enumerate(self.emails)],
            "phones": [{"phone": p, "isMain": i == 0} for i, p in enumerate(self.phones)],
            "createdAt": fmt_iso(self.created),
            "updatedAt": fmt_iso(self.updated),
        }


@dataclass
class Deal:
    id: int
    pipeline_id: int
    step_id: int
    name: str
    price: float
    currency: str
    contacts: list[int]
    created: float
    updated: float
    responsible_id: int = 1

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pipelineId": self.pipeline_id,
            "stepId": self.step_id,
            "name": self.name,
            "price": self.price,
            "currency": self.currency,
            "responsibleId": self.responsible_id,
            "createdAt": fmt_iso(self.created),
            "updatedAt": fmt_iso(self.updated),
        }

    def field(self, name: str) -> Any:
        return {
            "id": self.id,
            "createdAt": self.created,
            "updatedAt": self.updated,
            "pipelineId": self.pipeline_id,
            "stepId": self.step_id,
            "name": self.name,
            "price": self.price,
            "currency": self.currency,
            "responsibleId": self.responsible_id,
        }.get(name)


@dataclass
class Crm:
    """Contacts and deals by id; pipelines are fixed: pipeline 1 with steps 1..4."""

    contacts: dict[int, Contact] = field(default_factory=dict)
    deals: dict[int, Deal] = field(default_factory=dict)
    next_contact: int = 1
    next_deal: int = 1
    steps: dict[int, list[int]] = field(default_factory=lambda: {1: [1, 2, 3, 4]})

    def add_contact(
        self,
        first_name: str,
        last_name: str,
        now: float,
        *,
        responsible_id: int = 1,
        emails: list[str] | None = None,
        phones: list[str] | None = None,
    ) -> Contact:
        contact = Contact(
            id=self.next_contact,
            responsible_id=responsible_id,
            first_name=first_name,
            last_name=last_name,
            emails=emails or [],
            phones=phones or [],
            created=now,
            updated=now,
        )
        self.contacts[contact.id] = contact
        self.next_contact += 1
        return contact

    def add_deal(
        self,
        name: str,
        now: float,
        *,
        pipeline_id: int = 1,
        step_id: int = 1,
        price: float = 0,
        currency: str = "USD",
        contacts: list[int] | None = None,
    ) -> Deal:
        deal = Deal(
            self.next_deal, pipeline_id, step_id, name, price, currency, contacts or [], now, now
        )
        self.deals[deal.id] = deal
        self.next_deal += 1
        return deal

    def move_deal(self, deal_id: int, step_id: int, now: float) -> Deal:
        deal = self.deals[deal_id]
        deal.step_id = step_id
        deal.updated = now
        return deal
