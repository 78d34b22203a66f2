"""`connector demo` on a database an earlier demo run used: its sandbox flows start afresh."""

from __future__ import annotations

import asyncpg

from connector.catalog import CATALOG
from connector.config import parse
from connector.demo import reset_demo_state
from tests.integration.dispatch_support import insert_event

SANDBOX = "http://127.0.0.1:18525"
FLOWS = f"""
connections:
  demo: {{client_id: a, client_secret: b, base_url: "{SANDBOX}"}}
  real: {{client_id: c, client_secret: d, base_url: "https://api.sendpulse.com"}}
flows:
  - name: demo-new-subscribers
    trigger: {{type: sendpulse.subscriber_added, connection: demo, params: {{mailing_list_id: 1}}}}
    actions: [{{type: log}}]
  - name: real-new-subscribers
    trigger: {{type: sendpulse.subscriber_added, connection: real, params: {{mailing_list_id: 1}}}}
    actions: [{{type: log}}]
"""


async def counts(pool: asyncpg.Pool, flow: str) -> tuple[int, ...]:
    return tuple(
        [
            await pool.fetchval(f"SELECT count(*) FROM {table} WHERE flow_name = $1", flow)  # noqa: S608 - fixed table names
            for table in ("events", "deliveries", "snapshot_items", "flow_states")
        ]
    )


async def test_a_new_demo_run_forgets_what_earlier_runs_saw_of_its_sandbox(
    db_pool: asyncpg.Pool,
) -> None:
    config = parse(FLOWS, CATALOG, "demo.yaml", env={})
    async with db_pool.acquire() as conn:
        for flow, connection in (
            ("demo-new-subscribers", "demo"),
            ("real-new-subscribers", "real"),
        ):
            await insert_event(conn, flow, f"ev-{flow}", {"email": "gen1@example.com"})
            await conn.execute(
                "INSERT INTO connections (id, provider) VALUES ($1, 'sendpulse')", connection
            )
            await conn.execute(
                "INSERT INTO flow_states (flow_name, connection_id, trigger_type, state_key,"
                " cursor) VALUES ($1, $2, 'sendpulse.subscriber_added', 'k', '{}')",
                flow,
                connection,
            )
            await conn.execute(
                "INSERT INTO snapshot_items (flow_name, item_key, fingerprint)"
                " VALUES ($1, 'gen1@example.com', '')",
                flow,
            )
    assert await counts(db_pool, "demo-new-subscribers") == (1, 1, 1, 1)
    reset = await reset_demo_state(db_pool, config, SANDBOX)
    assert reset == ["demo-new-subscribers"]
    assert await counts(db_pool, "demo-new-subscribers") == (0, 0, 0, 0)
    # A flow on a real account keeps everything.
    assert await counts(db_pool, "real-new-subscribers") == (1, 1, 1, 1)
