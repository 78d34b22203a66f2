"""One connection pointed at another SendPulse account, by SIGHUP and then by a restart.

Two sandboxes are two accounts: each numbers its deals and SMTP messages from 1 and has its
own subscribers. The worker runs flows for new deals, sent SMTP emails and new subscribers
on the connection ``main``; the test points ``main`` from one sandbox to the other and back.
After each switch nothing that the account already held is delivered (``start: now``), and
everything made in it after its new baseline is, even where its ids repeat ones delivered
from the other account. The first account's deliveries stay in the log throughout.
"""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from connector.accounts import of_connection
from connector.config import Connection
from connector.sandbox.harness import Sandbox, start_sandbox
from tests.e2e.conftest import Daemon, eventually, log_records, wait_exit
from tests.e2e.test_workers import (
    WEBHOOK_SECRET,
    Receiver,
    fetch,
    receiver,  # noqa: F401 - the webhook receiver fixture
    start_worker,
    started,
)

SENDER = "sender@example.com"
FLOWS = {
    "deals": ("sendpulse.crm_deal_created", {}),
    "emails": ("sendpulse.smtp_email_sent", {}),
    "subscribers": ("sendpulse.subscriber_added", {"mailing_list_id": 1}),
}


class Account:
    """One sandbox as one account: its client, and what the test made in it."""

    def __init__(self, sb: Sandbox, name: str) -> None:
        self.sb, self.name = sb, name
        self.client_id, self.secret = f"client-{name}", f"secret-{name}"
        sb.add_client(self.client_id, self.secret)
        sb.state.add_book(f"List of {name}")
        self.made = 0

    @property
    def fingerprint(self) -> str:
        return of_connection(self.connection())

    def connection(self) -> Connection:
        return Connection.model_validate(
            {
                "client_id": self.client_id,
                "client_secret": self.secret,
                "base_url": self.sb.base_url,
            }
        )

    def make(self, count: int) -> set[tuple[str, str]]:
        """A deal, an SMTP email and a subscriber each, ``count`` times; their labels."""
        state, labels = self.sb.state, set()
        for _ in range(count):
            self.made += 1
            label = f"{self.name}-{self.made}"
            state.crm.add_deal(label, state.now())
            state.smtp.send(SENDER, [f"{label}@example.org"], label, 100, state.now())
            state.add_subscriber(1, f"{label}@example.com", webhook=False)
            labels |= {("deals", label), ("emails", label), ("subscribers", label)}
        return labels


@pytest.fixture
async def accounts() -> AsyncIterator[tuple[Account, Account]]:
    async with start_sandbox(rate_limit=10.0) as one, start_sandbox(rate_limit=10.0) as two:
        yield Account(one, "a"), Account(two, "b")


def write_config(path: Path, account: Account, url: str, every: str = "10s") -> Path:
    document = {
        "connections": {
            "main": {
                "client_id": account.client_id,
                "client_secret": account.secret,
                "base_url": account.sb.base_url,
                "rate_limit": "5/s",
            }
        },
        "egress": {"allow_networks": ["127.0.0.0/8"]},
        "flows": [
            {
                "name": name,
                "trigger": {"type": kind, "connection": "main", "params": params},
                "every": every,
                "start": "now",
                "actions": [{"type": "webhook", "url": url, "secret": WEBHOOK_SECRET}],
            }
            for name, (kind, params) in FLOWS.items()
        ],
    }
    path.write_text(json.dumps(document, indent=2))
    return path


def label_of(flow: str, payload: dict[str, Any]) -> str:
    if flow == "deals":
        return str(payload["name"])
    if flow == "emails":
        return str(payload["subject"])
    return str(payload["email"]).split("@")[0]


async def recorded(database: str) -> set[tuple[str, str]]:
    rows = await fetch(database, "SELECT flow_name, payload FROM events")
    return {(r["flow_name"], label_of(r["flow_name"], json.loads(r["payload"]))) for r in rows}


async def delivered(database: str) -> set[tuple[str, str]]:
    rows = await fetch(
        database,
        "SELECT e.flow_name, e.payload FROM deliveries d JOIN events e ON e.id = d.event_id"
        " WHERE d.state = 'delivered'",
    )
    return {(r["flow_name"], label_of(r["flow_name"], json.loads(r["payload"]))) for r in rows}


async def baselines_under(database: str, account: Account) -> bool:
    rows = await fetch(
        database, "SELECT account_fingerprint, baseline_done, cursor FROM flow_states"
    )
    return len(rows) == len(FLOWS) and all(
        r["baseline_done"] and r["account_fingerprint"] == account.fingerprint for r in rows
    )


def changes_logged(daemon: Daemon) -> list[dict[str, Any]]:
    return [r for r in log_records(daemon.output()) if r["event"] == "connection_account_changed"]


@pytest.mark.timeout(300)
async def test_switching_accounts_by_sighup_and_by_restart_loses_and_invents_nothing(
    database: str,
    tmp_path: Path,
    daemons: list[Daemon],
    accounts: tuple[Account, Account],
    receiver: tuple[Receiver, str],  # noqa: F811
) -> None:
    a, b = accounts
    rec, url = receiver
    # The old account is smaller: the new one's existing deals and emails sit above its
    # cursor and would all be announced as new if the cursor went on.
    a.make(2)
    existing_b = b.make(5)
    config = write_config(tmp_path / "flows.yaml", a, url)
    worker = start_worker(daemons, tmp_path, config, database, "w1")
    await started(worker)
    await eventually(lambda: baselines_under(database, a), "baselines in account a", 60)
    from_a = a.make(1)
    await eventually(lambda: from_a <= set(rec_labels(rec)), "account a's new items", 60)

    # 1. The same connection, another account, by SIGHUP.
    write_config(config, b, url)
    worker.proc.send_signal(signal.SIGHUP)
    await eventually(lambda: '"config_reloaded"' in worker.output(), "config_reloaded", 30)
    await eventually(lambda: baselines_under(database, b), "new baselines in account b", 60)
    from_b = b.make(1)
    await eventually(lambda: from_b <= set(rec_labels(rec)), "account b's new items", 60)
    assert await recorded(database) == from_a | from_b
    assert not existing_b & set(rec_labels(rec))
    [change] = changes_logged(worker)
    assert change["connection"] == "main"
    assert (change["old_fingerprint"], change["new_fingerprint"]) == (a.fingerprint, b.fingerprint)
    assert a.secret not in json.dumps(change) and b.secret not in json.dumps(change)
    worker.proc.send_signal(signal.SIGTERM)
    assert await wait_exit(worker.proc, 30) == 0, worker.output()[-4000:]

    # 2. Back to the first account, by a restart. What it gained meanwhile is its existing
    # data now: not delivered. Its next deal and SMTP message are number 6 there, the numbers
    # of b's last delivered ones: below b's cursor, and the same ids in another account.
    existing_a = a.make(2)
    write_config(config, a, url)
    worker = start_worker(daemons, tmp_path, config, database, "w2")
    await started(worker)
    await eventually(lambda: baselines_under(database, a), "new baselines in account a", 60)
    again = a.make(1)
    await eventually(lambda: again <= set(rec_labels(rec)), "account a's new items again", 60)
    assert await recorded(database) == from_a | from_b | again
    assert not (existing_a | existing_b) & set(rec_labels(rec))
    [change] = changes_logged(worker)
    assert (change["old_fingerprint"], change["new_fingerprint"]) == (b.fingerprint, a.fingerprint)
    # Every delivery of every account is in the log, each delivered once.
    await eventually(
        lambda: _all_delivered(database, from_a | from_b | again), "all deliveries done", 60
    )
    assert sorted(rec.ids().values()) == [1] * len(from_a | from_b | again)
    row = await fetch(
        database,
        "SELECT account_fingerprint, account_changed_at FROM connections WHERE id = 'main'",
    )
    assert row[0]["account_fingerprint"] == a.fingerprint
    assert row[0]["account_changed_at"] is not None
    worker.proc.send_signal(signal.SIGTERM)
    assert await wait_exit(worker.proc, 30) == 0, worker.output()[-4000:]


def rec_labels(rec: Receiver) -> list[tuple[str, str]]:
    return [(body["flow"], label_of(body["flow"], body["data"])) for _, body in rec.arrived]


async def _all_delivered(database: str, expected: set[tuple[str, str]]) -> bool:
    return await delivered(database) == expected


@pytest.mark.timeout(180)
async def test_a_reload_to_another_account_takes_the_new_baselines_at_once(
    database: str,
    tmp_path: Path,
    daemons: list[Daemon],
    accounts: tuple[Account, Account],
    receiver: tuple[Receiver, str],  # noqa: F811
) -> None:
    a, b = accounts
    _, url = receiver
    b.make(2)
    # Polls five minutes apart: the first comes within seconds of the start, the next would
    # come minutes after the reload if the reload did not bring it forward.
    config = write_config(tmp_path / "flows.yaml", a, url, every="5m")
    worker = start_worker(daemons, tmp_path, config, database, "w1")
    await started(worker)
    await eventually(lambda: baselines_under(database, a), "baselines in account a", 60)
    write_config(config, b, url, every="5m")
    worker.proc.send_signal(signal.SIGHUP)
    await eventually(lambda: baselines_under(database, b), "new baselines in account b", 60)
    assert await recorded(database) == set()
    # A reload that changes nothing of the account brings no poll forward and logs nothing.
    worker.proc.send_signal(signal.SIGHUP)
    await eventually(
        lambda: worker.output().count('"config_reloaded"') == 2, "the second reload", 30
    )
    assert len(changes_logged(worker)) == 1
    worker.proc.send_signal(signal.SIGTERM)
    assert await wait_exit(worker.proc, 30) == 0, worker.output()[-4000:]
