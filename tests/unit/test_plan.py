"""Flow plans: each flow's trigger and actions bound to their classes, params and connections."""

from __future__ import annotations

from typing import ClassVar

import pytest

from actions.append_jsonl import AppendJsonl
from actions.sendpulse.add_to_blacklist import AddToBlacklist
from actions.webhook import Webhook
from connector.catalog import CATALOG
from connector.config import parse
from connector.errors import ConfigInvalid
from connector.plugins import (
    Action,
    ActionContext,
    ActionResult,
    Catalog,
    NoParams,
    PluginParams,
    Registry,
    StoredEvent,
)
from triggers.sendpulse.subscriber_added import SubscriberAdded

FLOWS = """\
connections:
  main: {client_id: id, client_secret: secret-value}
flows:
  - name: welcome
    trigger: {type: sendpulse.subscriber_added, params: {mailing_list_id: 7}}
    actions:
      - type: webhook
        url: "https://example.com/hooks/welcome"
        secret: whsec_YS13ZWJob29rLXNlY3JldC0yNC1ieXRl
      - {type: sendpulse.add_to_blacklist, email: "{{ event.email }}"}
      - {type: append_jsonl, path: /var/tmp/events.jsonl}
"""


def test_a_plan_binds_classes_params_and_resolved_connections() -> None:
    config = parse(FLOWS, CATALOG, "flows.yaml", env={})
    plan = config.plan("welcome")
    assert plan is not None and config.plans == (plan,)
    assert plan.flow is config.flows[0]
    assert (plan.trigger, plan.connection) == (SubscriberAdded, "main")
    assert plan.params == SubscriberAdded.Params(mailing_list_id=7)
    assert [b.action for b in plan.actions] == [Webhook, AddToBlacklist, AppendJsonl]
    # The one SendPulse action takes the only SendPulse connection; the others take none.
    assert [b.connection for b in plan.actions] == [None, "main", None]
    assert [type(b.params) for b in plan.actions] == [
        a.Params for a in (Webhook, AddToBlacklist, AppendJsonl)
    ]
    assert config.plan("nope") is None


def test_only_the_catalogue_handed_in_is_known() -> None:
    webhooks_only = Catalog(CATALOG.triggers, Registry("action", [Webhook]))
    with pytest.raises(ConfigInvalid) as caught:
        parse(FLOWS, webhooks_only, "flows.yaml", env={})
    messages = [p.message for p in caught.value.problems]
    assert messages == [
        "unknown action type 'sendpulse.add_to_blacklist'; known types: webhook",
        "unknown action type 'append_jsonl'; known types: webhook",
    ]
    assert parse(FLOWS, CATALOG, "flows.yaml", env={}).catalog is CATALOG


class Shout(PluginParams):
    text: str


class Shouts(Action[Shout]):
    key: ClassVar[str] = "shout"

    async def run(self, ctx: ActionContext, event: StoredEvent, params: Shout) -> ActionResult:
        return ActionResult(summary=params.text.upper())


class Quiet(Action[NoParams]):
    key: ClassVar[str] = "quiet"


def test_an_actions_params_type_is_named_once_by_its_base() -> None:
    assert Shouts.Params is Shout
    assert Quiet.Params is NoParams
    assert Action.Params is NoParams
    catalog = Catalog(CATALOG.triggers, Registry("action", [Shouts]))
    text = FLOWS.split("    actions:")[0] + "    actions: [{type: shout, text: hi}]\n"
    plan = parse(text, catalog, "flows.yaml", env={}).plans[0]
    assert plan.actions[0].params == Shout(text="hi")
    with pytest.raises(ConfigInvalid, match="'text' is required"):
        parse(text.replace("text: hi", "loud: true"), catalog, "flows.yaml", env={})
