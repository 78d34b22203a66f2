"""Account fingerprints: what makes another account, what does not, and no secret inside."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from connector.accounts import of_connection, of_install
from connector.catalog import CATALOG
from connector.config import Connection, parse
from connector.engine import STORED_ACCOUNT
from connector.poll_job import account_of
from connector.poll_policy import new_label, same_account

SECRET = "client-secret-value-0123"
API_KEY = "api-key-value-0123456789"


def pair(**changes: Any) -> Connection:
    settings: dict[str, Any] = {
        "client_id": "client-a",
        "client_secret": SECRET,
        "base_url": "http://127.0.0.1:18201",
    }
    settings.update(changes)
    return Connection.model_validate(settings)


def keyed(key: str = API_KEY, **changes: Any) -> Connection:
    return Connection.model_validate({"api_key": key, **changes})


def test_the_same_settings_give_the_same_fingerprint() -> None:
    assert of_connection(pair()) == of_connection(pair())
    assert of_connection(keyed()) == of_connection(keyed())


@pytest.mark.parametrize(
    "other",
    [
        {"base_url": "http://127.0.0.1:18202"},
        {"base_url": "https://api.sendpulse.com"},
        {"client_id": "client-b"},
        {"provider": "mailium"},
    ],
)
def test_another_base_url_client_or_provider_is_another_account(other: dict[str, Any]) -> None:
    assert of_connection(pair(**other)) != of_connection(pair())


def test_another_api_key_is_another_account() -> None:
    assert of_connection(keyed("another-key-0123456789")) != of_connection(keyed())
    assert of_connection(keyed()) != of_connection(pair())


def test_a_rotated_secret_or_other_settings_are_the_same_account() -> None:
    # A new client_secret for the same client id, a new limit or timeout: the same account.
    same = [
        pair(client_secret="rotated-secret-9876"),
        pair(rate_limit="1/s", timeout="10s"),
        pair(webhook_token="a-webhook-token-0123456789"),
        pair(base_url="http://127.0.0.1:18201/"),
    ]
    assert {of_connection(c) for c in same} == {of_connection(pair())}


def test_a_fingerprint_holds_no_secret() -> None:
    both = pair(api_key=API_KEY)
    for connection in (pair(), keyed(), both):
        fingerprint = of_connection(connection)
        assert SECRET not in fingerprint
        assert API_KEY not in fingerprint
        assert API_KEY[:8] not in fingerprint
    # With a client id, the client id names the account; the key beside it changes nothing.
    assert of_connection(both) == of_connection(pair())
    assert "client_id:client-a" in of_connection(pair())


def test_an_install_is_named_by_its_install_id() -> None:
    assert of_install("sendpulse:app-1:42") == "install|sendpulse:app-1:42"
    assert of_install("sendpulse:app-1:42") != of_install("sendpulse:app-1:43")
    with pytest.raises(ValueError, match="install id"):
        of_install("")


def test_a_connection_without_credentials_is_refused_before_it_has_a_fingerprint() -> None:
    with pytest.raises(ValidationError, match="client_id and client_secret"):
        Connection.model_validate({"base_url": "http://127.0.0.1:18201"})


def test_unknown_on_either_side_is_the_same_account() -> None:
    assert same_account(None, "a")
    assert same_account("a", None)
    assert same_account("a", "a")
    assert not same_account("a", "b")


def test_watermark_labels_differ_by_account_and_stay_as_before_without_one() -> None:
    assert new_label(None) == "new"
    assert new_label("a") != new_label("b")
    assert new_label("a") == new_label("a")


def test_a_worker_takes_a_file_connections_account_from_its_own_file() -> None:
    document = {
        "connections": {"main": {"client_id": "client-a", "client_secret": SECRET}},
        "flows": [
            {
                "name": "f1",
                "trigger": {"type": "sendpulse.subscriber_added", "params": {"mailing_list_id": 1}},
                "actions": [{"type": "log"}],
            }
        ],
    }
    config = parse(json.dumps(document), CATALOG, "flows.yaml", env={})
    own = of_connection(config.connections["main"])
    # What another worker stored for the row does not count for a file connection ...
    assert account_of(config, "main") == own
    # ... while an app install, which the file does not describe, is what its row says (the
    # poll reads it with its lease: tests/integration/test_poll_start.py).
    assert account_of(config, "store-7") is STORED_ACCOUNT
