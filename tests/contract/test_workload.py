"""Every SendPulse trigger polled and every SendPulse action run once, through the real client.

Their exchanges land in the session's exchange log, so even a run of ``tests/contract`` alone
holds every operation the connector uses to the specs (``test_exchanges``, which runs last).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg

from actions import ACTIONS
from connector.providers.chatbots_api import CHANNELS, send_text
from connector.sandbox.exchanges import RECORD_ENV
from tests.contract.workload import account, action_params, contact_on, trigger_params
from triggers import TRIGGERS

MAX_ITEMS = 500


async def test_every_trigger_polls_and_every_action_runs(db_pool: asyncpg.Pool) -> None:
    async with account(db_pool) as (sb, client):
        polled = []
        for trigger in TRIGGERS:
            if trigger.provider != "sendpulse":
                continue
            plugin = trigger(trigger.Params.model_validate(trigger_params(trigger.key)))
            for since in (None, sb.state.now() - 86_400):
                seen = 0
                async for _ in plugin.poll(client, since):
                    seen += 1
                    if seen >= MAX_ITEMS:
                        break
            polled.append(trigger.key)
        params = action_params(sb)
        ran = []
        for action in ACTIONS:
            if action.provider != "sendpulse":
                continue
            result = await action().call(client, action.Params.model_validate(params[action.key]))
            assert result.summary, action.key
            ran.append(action.key)
        for name, channel in CHANNELS.items():
            await send_text(client, channel, contact_on(sb, name).id, f"to {name}")
    assert set(polled) == {t.key for t in TRIGGERS if t.provider == "sendpulse"}
    assert set(ran) == set(params)
    sent = [(c, body) for c, _, body in sb.state.chatbots.sent]
    assert sorted(c for c, _ in sent) == sorted(set(CHANNELS) - {"telegram", "messenger"})
    # The session's exchange log has them, for test_exchanges to check.
    logged = await asyncio.to_thread(Path(os.environ[RECORD_ENV]).read_text, encoding="utf-8")
    assert '"path":"/live-chat/contacts/send"' in logged
