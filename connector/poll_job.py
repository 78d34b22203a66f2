"""One scheduled poll as the worker runs it: the owner's checks, the token, the poll, metrics.

The scheduler calls :meth:`PollJob.run` with a flow's name. It polls only the connections
this worker owns (:mod:`connector.ownership`) and holds a connection whose credentials were
refused (``needs_reauth``) until they are fixed; it takes the bearer token before any
database connection, then hands the flow to the worker's :class:`connector.engine.Poller`,
and counts the outcome. A lost database is reported to the worker's
:class:`connector.db.health.DatabaseHealth`, never raised into the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from datetime import timedelta

import asyncpg
import structlog

from connector import accounts, metrics
from connector.config import Config
from connector.db.health import DB_ERRORS, DatabaseHealth
from connector.engine import DEFAULT_LEASE_TTL, STORED_ACCOUNT, Poller, StoredAccount
from connector.errors import ConnectorError
from connector.ownership import Ownership
from connector.poll_runs import PollRunBook
from connector.providers.provider_clients import ProviderClients

log = structlog.get_logger(__name__)


def account_of(config: Config, connection: str) -> str | StoredAccount:
    """The fingerprint of the account this worker's settings reach for ``connection``.

    A flow-file connection's comes from this worker's own file, never from the row: a worker
    still on the old file must not take the new account's state for its own. An app install
    has no settings in the file; its row is its settings (:data:`STORED_ACCOUNT`).
    """
    settings = config.connections.get(connection)
    return STORED_ACCOUNT if settings is None else accounts.of_connection(settings)


class PollJob:
    """The scheduler's job for every flow of one worker."""

    def __init__(
        self,
        *,
        config: Callable[[], Config],
        pool: asyncpg.Pool,
        worker_id: str,
        ownership: Ownership,
        providers: ProviderClients,
        poller: Poller,
        runs: PollRunBook,
        health: DatabaseHealth,
        lease_ttl: timedelta | None = None,
    ) -> None:
        self._config = config
        self.pool = pool
        self.worker_id = worker_id
        self.ownership = ownership
        self.providers = providers
        self.poller = poller
        self.runs = runs
        self.health = health
        self.lease_ttl = lease_ttl or DEFAULT_LEASE_TTL
        # Connections on hold for re-authorisation, so that a hold is logged once, not per poll.
        self._paused: set[str] = set()

    async def run(self, flow_name: str) -> None:
        """Poll ``flow_name`` once, if it is in the current config and this worker owns it."""
        config = self._config()
        plan = config.plan(flow_name)
        if plan is None or not plan.flow.enabled:
            return
        flow = plan.flow
        connection = flow.trigger.connection
        # Every trigger polls through a connection; only its owner polls it.
        if connection is None or not self.ownership.owns(connection):
            return
        try:
            client = self.providers.sendpulse(connection)
            # A poll holds a pooled database connection until it commits, and a token refresh
            # needs one of its own: with the pool full of polls waiting for tokens, none could
            # ever start. Take the token first, holding nothing; the poll records any failure.
            # A connection on hold has none to give (the poll finds it still held, or not).
            if connection not in self._paused:
                with suppress(ConnectorError):
                    await self.providers.auth[connection].bearer()
            with metrics.POLL_SECONDS.labels(flow=flow.name).time():
                result = await self.poller.poll(
                    plan.flow,
                    plan.params,
                    trigger=plan.trigger,
                    client=client,
                    pool=self.pool,
                    worker=self.worker_id,
                    account=account_of(config, connection),
                    runs=self.runs,
                    lease_ttl=self.lease_ttl,
                )
            metrics.POLLS.labels(flow=flow.name, outcome=result.status).inc()
            if result.status == "paused":
                self._hold(connection)
            elif result.status != "skipped":
                self._resume(connection)
            if result.events_created:
                # The deliveries' insert trigger wakes every dispatcher through NOTIFY.
                metrics.EVENTS_CREATED.labels(flow=flow.name, source="poll").inc(
                    result.events_created
                )
            self.health.back(worker=self.worker_id)
        except DB_ERRORS as exc:
            metrics.POLLS.labels(flow=flow.name, outcome="error").inc()
            self.health.lost(exc, worker=self.worker_id)

    def _hold(self, connection: str) -> None:
        if connection not in self._paused:
            self._paused.add(connection)
            log.warning(
                "connection_paused",
                connection=connection,
                reason="credentials refused; fix them in the flow file and reload",
            )

    def _resume(self, connection: str) -> None:
        if connection in self._paused:
            self._paused.discard(connection)
            log.info("connection_resumed", connection=connection)
