"""The engine with the real SendPulse snapshot triggers over an in-memory account.

A change the engine drops (a removal that was only a paging miss, a campaign the paging
skipped for one poll) must leave the stored snapshot as it was, so that the real change, if
it comes later, is still found, exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import pytest

from connector.engine import PollResult, poll_flow
from connector.plugins import PluginParams, Trigger
from connector.providers.errors import NotFound
from tests.integration.test_engine import Clock, Store, make_flow
from triggers.sendpulse._subscribers import ListParams
from triggers.sendpulse.campaign_status_changed import CampaignStatusChanged, CampaignStatusParams
from triggers.sendpulse.subscriber_removed import SubscriberRemoved

EMAILS = "/addressbooks/1/emails"


class Account(Store):
    """The in-memory list, plus fixed replies (or errors) for single-item paths."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: dict[str, Any] = {}

    async def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> Any:
        if path not in self.replies:
            return await super().request(method, path, params=params, json=json)
        self.requests_made += 1
        reply = self.replies[path]
        if isinstance(reply, Exception):
            raise reply
        return reply


@pytest.fixture
def account() -> Account:
    return Account()


async def _poll(
    pool: asyncpg.Pool, account: Account, trigger: type[Trigger], params: PluginParams
) -> PollResult:
    result = await poll_flow(
        make_flow(trigger),
        params,
        client=account,
        pool=pool,
        worker="w1",
        clock=Clock(),
        trigger=trigger,
    )
    assert result.status == "ok", result.error
    return result


async def _payloads(pool: asyncpg.Pool) -> list[str]:
    return [r["payload"] for r in await pool.fetch("SELECT payload FROM events ORDER BY id")]


async def test_a_removal_found_not_to_be_one_is_still_caught_when_it_happens(
    db_pool: asyncpg.Pool, account: Account
) -> None:
    for name in ("a", "b", "c"):
        account.items[name] = {"email": f"{name}@x.io", "status": 1}
    params = ListParams(mailing_list_id=1)
    assert (await _poll(db_pool, account, SubscriberRemoved, params)).baseline
    # The list misses b, but b is still there when asked directly: no event.
    del account.items["b"]
    account.replies[f"{EMAILS}/b@x.io"] = [{"email": "b@x.io", "status": 1}]
    assert (await _poll(db_pool, account, SubscriberRemoved, params)).events_created == 0
    # Now b really leaves: the next poll must still see it as removed.
    account.replies[f"{EMAILS}/b@x.io"] = NotFound(
        "Email not found", status=404, error_code=213, meaning=None
    )
    assert (await _poll(db_pool, account, SubscriberRemoved, params)).events_created == 1
    assert (await _poll(db_pool, account, SubscriberRemoved, params)).events_created == 0
    rows = await db_pool.fetch("SELECT item_key FROM events")
    assert [r["item_key"] for r in rows] == ["b@x.io"]


def _campaign(campaign_id: int, status: int) -> dict[str, Any]:
    message = {"subject": f"S{campaign_id}", "sender_email": "me@x.io", "list_id": 1}
    return {"id": campaign_id, "name": f"C{campaign_id}", "status": status, "message": message}


async def test_a_campaign_missed_for_one_poll_keeps_its_status_change(
    db_pool: asyncpg.Pool, account: Account
) -> None:
    account.items["1"] = _campaign(1, 0)
    account.items["2"] = _campaign(2, 0)
    params = CampaignStatusParams()
    assert (await _poll(db_pool, account, CampaignStatusChanged, params)).baseline
    missed = account.items.pop("2")
    assert (await _poll(db_pool, account, CampaignStatusChanged, params)).events_created == 0
    account.items["2"] = {**missed, "status": 2}
    assert (await _poll(db_pool, account, CampaignStatusChanged, params)).events_created == 1
    rows = await db_pool.fetch("SELECT item_key, payload FROM events")
    assert [r["item_key"] for r in rows] == ["2"]
    assert '"previous_status": 0' in rows[0]["payload"]
    assert '"status": 2' in rows[0]["payload"]


async def test_a_sent_campaign_missed_for_one_poll_is_not_announced_again(
    db_pool: asyncpg.Pool, account: Account
) -> None:
    account.items["1"] = _campaign(1, 0)
    params = CampaignStatusParams(to=3)
    assert (await _poll(db_pool, account, CampaignStatusChanged, params)).baseline
    account.items["1"] = _campaign(1, 3)
    assert (await _poll(db_pool, account, CampaignStatusChanged, params)).events_created == 1
    missed = account.items.pop("1")
    assert (await _poll(db_pool, account, CampaignStatusChanged, params)).events_created == 0
    account.items["1"] = missed
    assert (await _poll(db_pool, account, CampaignStatusChanged, params)).events_created == 0
    assert len(await _payloads(db_pool)) == 1
