"""Flow-file parts of app installs: the ``apps:`` section and scope checks per flow."""

from __future__ import annotations

import pytest

from connector.catalog import CATALOG
from connector.config import parse
from connector.errors import ConfigInvalid

FLOW = """
connections:
  main:
    client_id: id
    client_secret: a-long-secret
    scopes: {scopes}
flows:
  - name: new-lists
    trigger:
      type: sendpulse.mailing_list_created
    actions:
      - type: log
"""


def test_a_flow_needing_a_scope_the_connection_lacks_is_refused() -> None:
    with pytest.raises(ConfigInvalid) as caught:
        parse(FLOW.format(scopes="[smtp, chatbots]"), CATALOG, "flows.yaml")
    message = str(caught.value)
    assert "needs the 'emails' scope" in message
    assert "granted only: smtp, chatbots" in message
    assert "flows[0].trigger" in message


@pytest.mark.parametrize("scopes", ["[emails, smtp]", "null"])
def test_granted_or_unrestricted_scopes_pass(scopes: str) -> None:
    config = parse(FLOW.format(scopes=scopes), CATALOG, "flows.yaml")
    assert [f.name for f in config.flows] == ["new-lists"]


def test_apps_section_is_validated() -> None:
    config = parse(
        """
apps:
  store:
    app_id: "42"
    secret: app-secret-value
  mailium:
    provider: mailium
    client_id: cid
    secret: other-secret
    redirect_uri: https://connector.example.com/apps/mailium/callback
    scopes: [list.read, subscriber.read]
""",
        CATALOG,
        "flows.yaml",
    )
    assert config.apps["store"].app_id == "42"
    assert config.apps["mailium"].scopes == ["list.read", "subscriber.read"]


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("{secret: s}", "needs app_id"),
        ("{provider: mailium, client_id: c, secret: s}", "needs client_id and redirect_uri"),
        ("{app_id: '1'}", "'secret' is required"),
    ],
)
def test_incomplete_apps_are_refused(app: str, message: str) -> None:
    with pytest.raises(ConfigInvalid, match=message):
        parse(f"apps:\n  store: {app}\n", CATALOG, "flows.yaml")
