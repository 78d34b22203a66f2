"""One poll of every SendPulse trigger and one run of every SendPulse action, on the sandbox.

Shared by the contract workload test and the literal payload tests: an account seeded with the
demo data plus one chatbot (a contact with an incoming message) on every channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import asyncpg
from aiolimiter import AsyncLimiter

from connector.auth.tokens import StaticKey
from connector.providers.chatbots_api import CHANNELS
from connector.providers.sendpulse_client import SendPulseClient
from connector.sandbox.chatbots import ChatContact
from connector.sandbox.harness import Sandbox, start_sandbox


@asynccontextmanager
async def account(
    pool: asyncpg.Pool, *, seed: str | None = "demo", chats: bool = True
) -> AsyncIterator[tuple[Sandbox, SendPulseClient]]:
    """A demo-seeded sandbox with a bot and a writing contact per channel, and a client."""
    async with start_sandbox(seed=seed, rate_limit=None) as sb, aiohttp.ClientSession() as http:
        now = sb.state.now()
        for name in CHANNELS if chats else ():
            bot = sb.state.chatbots.add_bot(name, f"{name} bot", now - 7200)
            contact = sb.state.chatbots.add_contact(bot.id, f"Ann {name}", now - 3600)
            sb.state.chatbots.add_message(contact, f"hi on {name}", 1, now - 1800)
        key = sb.state.auth.add_api_key(sb.client_id)
        client = SendPulseClient(
            connection_id="main",
            session=http,
            base_url=sb.base_url,
            limiter=AsyncLimiter(1000, 1),
            auth=StaticKey(connection_id="main", provider="sendpulse", key=key, pool=pool),
        )
        yield sb, client


def contact_on(sb: Sandbox, channel: str) -> ChatContact:
    return next(c for c in sb.state.chatbots.contacts.values() if c.channel == channel)


def trigger_params(key: str) -> dict[str, Any]:
    """Params that the demo seed satisfies, for any SendPulse trigger."""
    if key == "sendpulse.push_subscriber_added":
        return {"website_id": 1}
    if key.startswith("sendpulse.subscriber_"):
        return {"mailing_list_id": 1}
    return {}


def action_params(sb: Sandbox) -> dict[str, dict[str, Any]]:
    """Params for one run of every SendPulse action on the demo account."""
    telegram = contact_on(sb, "telegram").id
    return {
        "sendpulse.add_subscriber": {"mailing_list_id": 1, "email": "new@example.com"},
        "sendpulse.update_subscriber_variables": {
            "mailing_list_id": 1,
            "email": "new@example.com",
            "variables": {"city": "Kyiv"},
        },
        "sendpulse.unsubscribe_subscriber": {"mailing_list_id": 1, "email": "new@example.com"},
        "sendpulse.remove_subscriber": {"mailing_list_id": 1, "email": "new@example.com"},
        "sendpulse.add_to_blacklist": {"email": "spam@example.com"},
        "sendpulse.send_email": {
            "to": "ann@example.com",
            "from_email": "sender@example.com",
            "subject": "Hi",
            "template_id": 42,
            "variables": {"name": "Ann"},
        },
        "sendpulse.create_campaign": {
            "mailing_list_id": 1,
            "sender_name": "Shop",
            "sender_email": "sender@example.com",
            "subject": "News",
            "html": "<p>News</p>",
        },
        "sendpulse.send_sms": {"sender": "Shop", "phone": "+380501112233", "body": "Hi"},
        "sendpulse.add_phone_to_list": {
            "mailing_list_id": 1,
            "phone": "+380501112233",
            "variables": {"name": "Ann", "visits": 3},
        },
        "sendpulse.create_crm_contact": {
            "responsible_id": 1,
            "first_name": "Ann",
            "email": "ann@example.com",
            "phone": "+380501112233",
        },
        "sendpulse.create_crm_deal": {"pipeline_id": 1, "step_id": 1, "deal_name": "Big"},
        "sendpulse.send_chatbot_message": {
            "channel": "telegram",
            "contact_id": telegram,
            "text": "Hello",
        },
        "sendpulse.run_chatbot_flow": {
            "channel": "telegram",
            "contact_id": telegram,
            "flow_id": "flow-1",
        },
        "sendpulse.fire_automation_event": {"event": "signup", "email": "ann@example.com"},
    }
