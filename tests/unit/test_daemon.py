"""Which connections a worker must own: every one a flow polls or acts on."""

from __future__ import annotations

from connector.catalog import CATALOG
from connector.config import parse
from connector.daemon import owned_connections

FLOWS = """
connections:
  polled: {client_id: a, client_secret: b}
  acted: {client_id: c, client_secret: d}
  idle: {client_id: e, client_secret: f}
flows:
  - name: copy
    trigger: {type: sendpulse.subscriber_added, connection: polled, params: {mailing_list_id: 1}}
    actions:
      - type: sendpulse.add_subscriber
        connection: acted
        mailing_list_id: 2
        email: "{{ event.email }}"
  - name: paused
    enabled: false
    trigger: {type: sendpulse.subscriber_added, connection: idle, params: {mailing_list_id: 1}}
    actions: [{type: log}]
"""


def test_action_connections_are_owned_too_and_disabled_flows_are_not() -> None:
    config = parse(FLOWS, CATALOG, "flows.yaml", env={})
    # An action-only connection needs one owner as much as a polled one: only the owner's
    # rate limiter may speak for that account.
    assert owned_connections(config) == ["acted", "polled"]
