"""``sendpulse.subscriber_variables_changed``: a subscriber's variables changed."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from connector.diff import fingerprint
from connector.plugins import Item, SnapshotChange, Strategy
from triggers.sendpulse._subscribers import ListParams, SubscriberTrigger


class VariablesParams(ListParams):
    """A mailing list, and optionally the variables to watch (default: all of them)."""

    variables: list[str] | None = Field(default=None, min_length=1)


class SubscriberVariablesChanged(SubscriberTrigger):
    """A subscriber whose watched variables differ from the last poll's."""

    key: ClassVar[str] = "sendpulse.subscriber_variables_changed"
    Params = VariablesParams
    params: VariablesParams
    strategy: ClassVar[Strategy] = "fingerprint"
    emits: ClassVar[frozenset[SnapshotChange]] = frozenset({"changed"})
    summary = "a subscriber's variables changed"
    api_calls = ("GET /addressbooks/{id}/emails (limit 100, every page, overlapping by one row)",)

    def fingerprint_of(self, item: Item) -> str:
        params = self.params
        variables = item.get("variables") or {}
        if not isinstance(variables, dict):
            # The single-email call answers a list of {name, type, value}; accept both shapes.
            variables = {v.get("name"): v.get("value") for v in variables if isinstance(v, dict)}
        names = params.variables if params.variables is not None else sorted(variables)
        return fingerprint({"v": {name: variables.get(name) for name in names}}, ["v"])
