"""What each trigger declares for the webhook intake: the actions it takes, the item a change
makes, the removals, the flows that poll now; and that the core names none of it."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from connector.catalog import CATALOG
from connector.intake import change_actions
from connector.plugins import Gone, Trigger, WebhookChange
from triggers.sendpulse._subscribers import SubscriberTrigger
from triggers.sendpulse.campaign_status_changed import CampaignStatusChanged
from triggers.sendpulse.subscriber_added import SubscriberAdded
from triggers.sendpulse.subscriber_removed import SubscriberRemoved
from triggers.sendpulse.subscriber_status_changed import SubscriberStatusChanged
from triggers.sendpulse.subscriber_unsubscribed import SubscriberUnsubscribed
from triggers.sendpulse.subscriber_variables_changed import SubscriberVariablesChanged

ROOT = Path(__file__).resolve().parents[2]
SUBSCRIBER_TRIGGERS = [
    SubscriberAdded,
    SubscriberRemoved,
    SubscriberUnsubscribed,
    SubscriberStatusChanged,
    SubscriberVariablesChanged,
]
LIST = 7
# The single-subscriber call's answer: variables as {name, type, value}.
ANSWER = {
    "email": "Ann@Example.com",
    "status": 4,
    "status_explain": "Unsubscribed",
    "phone": "+100",
    "variables": [{"name": "plan", "type": "string", "value": "pro"}],
}
# The same subscriber as a row of the list call, which the poll reads.
ROW = {
    "email": "Ann@Example.com",
    "status": 4,
    "status_explain": "Unsubscribed",
    "phone": "+100",
    "variables": {"plan": "pro"},
}


def change(action: str, book_id: int = LIST, email: str = "ann@example.com") -> WebhookChange:
    return WebhookChange(
        action=action, email=email, book_id=book_id, variables={"plan": "pro"}, from_all=False
    )


def trigger(cls: type[Trigger]) -> Trigger:
    return cls(cls.Params.model_validate({"mailing_list_id": LIST}))


def test_the_subscriber_triggers_take_the_list_changes_and_nothing_else_does() -> None:
    assert change_actions(CATALOG.triggers) == {"new_emails", "delete", "unsubscribe"}
    takers = {cls.key for cls in CATALOG.triggers if cls.webhook_actions}
    assert takers == {cls.key for cls in SUBSCRIBER_TRIGGERS}
    assert all(issubclass(cls, SubscriberTrigger) for cls in SUBSCRIBER_TRIGGERS)


def test_only_the_campaign_status_flows_poll_on_a_task_status_update() -> None:
    polling = {cls.key: cls.webhook_polls for cls in CATALOG.triggers if cls.webhook_polls}
    assert polling == {CampaignStatusChanged.key: frozenset({"task_status_update"})}
    assert not CampaignStatusChanged.webhook_actions


@pytest.mark.parametrize("cls", SUBSCRIBER_TRIGGERS)
def test_a_subscriber_flow_takes_only_its_own_lists_changes(cls: type[Trigger]) -> None:
    flow = trigger(cls)
    for action in ("new_emails", "delete", "unsubscribe"):
        assert flow.webhook_takes(change(action))
        assert not flow.webhook_takes(change(action, book_id=LIST + 1))
    assert not flow.webhook_takes(change("open"))


@pytest.mark.parametrize("cls", SUBSCRIBER_TRIGGERS)
@pytest.mark.parametrize("action", ["new_emails", "unsubscribe"])
def test_a_join_or_unsubscribe_is_read_back_and_becomes_the_row_the_poll_reads(
    cls: type[Trigger], action: str
) -> None:
    flow = trigger(cls)
    assert flow.webhook_lookup(change(action, email="a+b@example.com")) == (
        f"/addressbooks/{LIST}/emails/a%2Bb@example.com"
    )
    for answer in (ANSWER, [ANSWER]):  # SendPulse wraps some single objects in a list
        seen = flow.webhook_item(change(action), answer)
        assert isinstance(seen, dict)
        # Same key, fingerprint and payload as the poll's row: the same event.
        assert flow.key_of(seen) == flow.key_of(ROW) == "ann@example.com"
        assert flow.fingerprint_of(seen) == flow.fingerprint_of(ROW)
        assert flow.payload_of(seen) == flow.payload_of(ROW)


@pytest.mark.parametrize("cls", SUBSCRIBER_TRIGGERS)
@pytest.mark.parametrize("answer", [None, [], [None], "", 17])
def test_a_subscriber_the_api_no_longer_has_is_left_to_the_poll(
    cls: type[Trigger], answer: Any
) -> None:
    seen = trigger(cls).webhook_item(change("new_emails"), answer)
    assert seen is None


@pytest.mark.parametrize("cls", SUBSCRIBER_TRIGGERS)
def test_a_delete_is_a_removal_and_reads_nothing_back(cls: type[Trigger]) -> None:
    flow = trigger(cls)
    assert flow.webhook_lookup(change("delete")) is None
    assert flow.webhook_item(change("delete"), None) == Gone("ann@example.com")


@pytest.mark.parametrize("cls", SUBSCRIBER_TRIGGERS)
def test_an_active_subscriber_leaves_only_the_inactive_only_flows_view(
    cls: type[Trigger],
) -> None:
    active = {**ANSWER, "status": 1}
    seen = trigger(cls).webhook_item(change("new_emails"), active)
    if cls.inactive_only:
        assert cls is SubscriberUnsubscribed
        assert seen == Gone("ann@example.com")
    else:
        assert isinstance(seen, dict) and seen["status"] == 1


def test_the_core_names_no_trigger_key_and_no_subscriber_status() -> None:
    source = (ROOT / "connector" / "intake.py").read_text()
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    texts = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]
    assert "hooks" in " ".join(texts)  # the scan sees the module's strings
    assert not [t for t in texts if "sendpulse." in t or "subscriber_" in t]
    for name in ("ACTIVE", "SUBSCRIBER_TRIGGERS", "POLLED", "DIRECT", "inactive_only"):
        assert name not in source
