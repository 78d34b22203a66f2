"""``connector run``: the worker. One owner opens every resource in order, closes in reverse.

Inside one process run side by side: the scheduler (one job per flow), the dispatcher (claims
and delivers), connection ownership (leases with a heartbeat), and the web server (health,
metrics, app installs, SendPulse webhook intake). Signals: SIGTERM/SIGINT drain and stop (a
second one exits at once), SIGHUP reloads the flow file.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import structlog

from connector import accounts, metrics
from connector.admin import AdminAccess, build_admin_app
from connector.auth.crypto import load_secret_key
from connector.config import Config, load_file
from connector.db import migrate as migrations
from connector.db.health import DB_ERRORS, DatabaseHealth
from connector.db.pool import ensure_database, home, locate, pool
from connector.dispatch import Dispatcher
from connector.egress import EgressPolicy, guarded_session
from connector.engine import Poller
from connector.errors import ConfigError, ConfigInvalid, ConnectorError
from connector.http_client.transport import provider_connector, send_trace
from connector.instances import apps_used, expand
from connector.leases import default_worker_id
from connector.ownership import DEFAULT_TTL, Ownership
from connector.poll_runs import PollRunBook
from connector.providers.provider_clients import ProviderClients
from connector.scheduler import FlowScheduler
from connector.status_page import StatusSource, status_routes
from connector.store import connections, flow_states
from connector.web import WebState, build_app, serve

log = structlog.get_logger(__name__)

# How often per-install flows look for new and removed installs, in seconds.
INSTALLS_REFRESH = 10.0


def env_lease(name: str) -> timedelta | None:
    """A lease length in seconds from the environment, or None for the built-in default."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < 86400:
        raise ConfigError(f"{name} must be a number of seconds between 0 and 86400, not {raw!r}")
    return timedelta(seconds=seconds)


@dataclass
class Runtime:
    """What every part of a running worker shares; built by :func:`runtime`."""

    pool: asyncpg.Pool
    session: aiohttp.ClientSession
    secret_key: bytes
    home: Path
    worker_id: str
    # Tokens and connection rows get their own few connections: a token refresh must never
    # wait for a pooled connection that only a poll waiting for that token could give back.
    token_pool: asyncpg.Pool | None = None


@asynccontextmanager
async def runtime(env: Mapping[str, str] | None = None) -> AsyncIterator[Runtime]:
    """Open the database (starting the embedded one if needed), migrate, open HTTP."""
    env = os.environ if env is None else env
    async with AsyncExitStack() as stack:
        state_home = home(env)
        secret_key = load_secret_key(env, state_home)
        location = await asyncio.to_thread(locate, env)
        if location.embedded is not None and location.embedded.started_here:
            stack.callback(location.embedded.stop)
        await ensure_database(location.dsn)
        db = await stack.enter_async_context(pool(location.dsn, min_size=2, max_size=20))
        token_db = await stack.enter_async_context(pool(location.dsn, min_size=1, max_size=4))
        async with db.acquire() as conn:
            applied = await migrations.migrate(conn)
        log.info("database_ready", migrations_applied=len(applied))
        session = await stack.enter_async_context(
            aiohttp.ClientSession(
                headers={"User-Agent": "sendpulse-connector"},
                connector=provider_connector(),
                trace_configs=[send_trace()],
            )
        )
        yield Runtime(
            pool=db,
            session=session,
            secret_key=secret_key,
            home=state_home,
            worker_id=env.get("CONNECTOR_WORKER_ID") or default_worker_id(),
            token_pool=token_db,
        )


def owned_connections(config: Config) -> list[str]:
    """Every connection a flow polls or acts on: each gets one owner in the cluster."""
    names = set()
    for flow in config.flows:
        if not flow.enabled:
            continue
        if flow.trigger.connection:
            names.add(flow.trigger.connection)
        names.update(a.connection for a in flow.actions if a.connection)
    return sorted(names)


class Worker:
    """The parts of one worker process and the rules for starting, reloading and stopping."""

    def __init__(
        self,
        rt: Runtime,
        config: Config,
        *,
        config_path: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = 8080,
        drain: float = 30.0,
        extra_routes: list[Any] | None = None,
        admin_host: str = "127.0.0.1",
        admin_port: int | None = None,
        admin_access: AdminAccess | None = None,
    ) -> None:
        self.rt = rt
        # The flow file as loaded, and what runs: per-install flows expanded (instances.py).
        self.file_config = config
        self.config = expand(config, {})
        self.config_path = config_path
        self.host = host
        self.port = port
        self.drain = drain
        self.extra_routes = extra_routes or []
        # The admin listener (readiness, metrics, status page); see connector.admin.
        self.admin_host = admin_host
        self.admin_port = admin_port
        self.admin_access = admin_access or AdminAccess()
        if admin_port is not None:
            self.admin_access.check_binding(admin_host)
        self.stop = asyncio.Event()
        self._signals = 0
        self._reload_lock = asyncio.Lock()
        self.health = DatabaseHealth()
        self._paused: dict[str, str] = {}
        # Shorter leases (CONNECTOR_LEASE_TTL for connections and their polls,
        # CONNECTOR_DELIVERY_LEASE for deliveries) let a dead worker's work move on sooner.
        connection_lease = env_lease("CONNECTOR_LEASE_TTL")
        delivery_lease = env_lease("CONNECTOR_DELIVERY_LEASE")
        self._poll_options: dict[str, Any] = (
            {} if connection_lease is None else {"lease_ttl": connection_lease}
        )
        self._dispatch_options: dict[str, Any] = (
            {}
            if delivery_lease is None
            else {
                "lease": delivery_lease,
                "rescue_every": min(delivery_lease, timedelta(seconds=15)),
            }
        )
        self.ownership = Ownership(
            rt.pool,
            rt.worker_id,
            owned_connections(config),
            ttl=connection_lease or DEFAULT_TTL,
            health=self.health,
        )
        self.scheduler = FlowScheduler(self._poll)
        # This worker's polls in progress and the connection leases they share.
        self.poller = Poller()
        # Quiet polls' poll_runs rows, written once a second for all of them.
        self.poll_runs = PollRunBook(rt.pool, rt.worker_id)
        self._poll_runs_stop = asyncio.Event()
        self.providers = self._providers(config)
        # One policy object for the life of the worker: a reload changes it in place.
        self.egress = EgressPolicy(config.document.egress.allow_networks)
        self.http: aiohttp.ClientSession | None = None
        self.dispatcher: Dispatcher | None = None
        self._dispatcher_task: asyncio.Task[None] | None = None
        self._dispatcher_stop = asyncio.Event()

    def _providers(self, config: Config) -> ProviderClients:
        return ProviderClients(
            session=self.rt.session,
            pool=self.rt.token_pool or self.rt.pool,
            config=config,
            secret_key=self.rt.secret_key,
            worker_id=self.rt.worker_id,
        )

    # -- polling ----------------------------------------------------------------------------

    async def _poll(self, flow_name: str) -> None:
        config = self.config
        plan = config.plan(flow_name)
        if plan is None or not plan.flow.enabled:
            return
        flow = plan.flow
        connection = flow.trigger.connection
        # Every trigger polls through a connection; only its owner polls it.
        if connection is None or not self.ownership.owns(connection):
            return
        try:
            async with self.rt.pool.acquire() as conn:
                row = await connections.status(conn, connection_id=connection)
            if self._needs_reauth(connection, None if row is None else row["status"]):
                metrics.POLLS.labels(flow=flow.name, outcome="paused").inc()
                return
            account = self._account(
                config, connection, None if row is None else row["account_fingerprint"]
            )
            client = self.providers.sendpulse(connection)
            # A poll holds a pooled database connection until it commits, and a token refresh
            # needs one of its own: with the pool full of polls waiting for tokens, none could
            # ever start. Take the token first, holding nothing; poll_flow records any failure.
            with suppress(ConnectorError):
                await self.providers.auth[connection].bearer()
            with metrics.POLL_SECONDS.labels(flow=flow.name).time():
                result = await self.poller.poll(
                    plan.flow,
                    plan.params,
                    trigger=plan.trigger,
                    client=client,
                    pool=self.rt.pool,
                    worker=self.rt.worker_id,
                    account=account,
                    runs=self.poll_runs,
                    **self._poll_options,
                )
            metrics.POLLS.labels(flow=flow.name, outcome=result.status).inc()
            if result.events_created:
                # The deliveries' insert trigger wakes every dispatcher through NOTIFY.
                metrics.EVENTS_CREATED.labels(flow=flow.name, source="poll").inc(
                    result.events_created
                )
            self._database_back()
        except DB_ERRORS as exc:
            metrics.POLLS.labels(flow=flow.name, outcome="error").inc()
            self._database_lost(exc)

    @staticmethod
    def _account(config: Config, connection: str, stored: str | None) -> str | None:
        """The fingerprint of the account this worker's settings reach for ``connection``.

        A flow-file connection's comes from this worker's own file, never from the row: a
        worker still on the old file must not take the new account's state for its own. An
        app install has no settings in the file; its row is its settings.
        """
        settings = config.connections.get(connection)
        return stored if settings is None else accounts.of_connection(settings)

    def _needs_reauth(self, connection: str, status: str | None) -> bool:
        if status == "needs_reauth":
            if self._paused.get(connection) != status:
                self._paused[connection] = status
                log.warning(
                    "connection_paused",
                    connection=connection,
                    reason="credentials refused; fix them in the flow file and reload",
                )
            return True
        if connection in self._paused:
            del self._paused[connection]
            log.info("connection_resumed", connection=connection)
        return False

    def _database_lost(self, exc: BaseException) -> None:
        self.health.lost(exc, worker=self.rt.worker_id)

    def _database_back(self) -> None:
        self.health.back(worker=self.rt.worker_id)

    # -- dispatching --------------------------------------------------------------------------

    def _start_dispatcher(self) -> None:
        if self.http is None:
            raise RuntimeError("the webhook session opens before the dispatcher starts")
        self._dispatcher_stop = asyncio.Event()
        self.dispatcher = Dispatcher(
            self.rt.pool,
            self.config,
            http=self.http,
            providers=self.providers,
            worker_id=self.rt.worker_id,
            **self._dispatch_options,
        )
        self._dispatcher_task = asyncio.create_task(
            self.dispatcher.run(self._dispatcher_stop), name="dispatcher"
        )

    async def _stop_dispatcher(self, drain: float) -> None:
        task = self._dispatcher_task
        if task is None:
            return
        self._dispatcher_stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=drain)
        except TimeoutError:
            log.warning("deliveries_cancelled_at_shutdown")
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        self._dispatcher_task = None

    # -- signals and reload -------------------------------------------------------------------

    def _on_stop_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("worker_killed", signal=signal.Signals(signum).name)
            os._exit(1)
        log.info("worker_stopping", signal=signal.Signals(signum).name, drain_s=self.drain)
        self.stop.set()

    async def reload(self) -> bool:
        """Re-read the flow file; keep the running flows if the new one is invalid."""
        if self.config_path is None:
            return False
        async with self._reload_lock:
            try:
                config = await asyncio.to_thread(
                    load_file, self.config_path, self.file_config.catalog
                )
            except ConfigInvalid as exc:
                log.error(
                    "config_reload_failed",
                    file=self.config_path,
                    problems=[str(p) for p in exc.problems],
                )
                return False
            try:
                # Everything that can fail comes first, on a scratch registry: a failure
                # leaves the running flows exactly as they were.
                moved = await self._providers(config).ensure_connections()
                expanded = await self._expanded(config)
                polled_before = await self._polled_before(expanded)
            except DB_ERRORS as exc:
                log.error("config_reload_failed", file=self.config_path, error=str(exc))
                return False
            if config.document.egress != self.file_config.document.egress:
                # Checked at every connect, so the next delivery already sees the new list;
                # idle keep-alive connections close within the pool's keep-alive timeout.
                self.egress.use(config.document.egress.allow_networks)
                log.info(
                    "egress_policy_changed",
                    allow_networks=config.document.egress.allow_networks,
                )
            self.providers.use_config(config)
            self.file_config = config
            self._switch(expanded, polled_before)
            for flow in self.config.flows:
                if flow.trigger.connection in moved:
                    # The new account's baseline now, not an interval later: until it is
                    # taken, the webhook intake makes no events for the flow.
                    self.scheduler.run_now(flow.name)
            await self._claim_connections()
            log.info("config_reloaded", file=self.config_path, flows=len(self.config.flows))
            return True

    def _switch(self, config: Config, polled_before: Collection[str]) -> None:
        """Run ``config`` from now on: deliveries, ownership and schedules follow it."""
        self.config = config
        if self.dispatcher is not None:
            self.dispatcher.use_config(config)
        self.ownership.set_connections(owned_connections(config))
        self.scheduler.sync(config.flows, polled_before)

    async def _polled_before(self, config: Config) -> set[str]:
        """The flows of ``config`` not scheduled yet that have polled before (any worker)."""
        scheduled = set(self.scheduler.scheduled)
        names = [f.name for f in config.flows if f.name not in scheduled]
        if not names:
            return set()
        async with self.rt.pool.acquire() as conn:
            return await flow_states.polled_before(conn, flow_names=names)

    async def _expanded(self, config: Config) -> Config:
        apps = apps_used(config)
        if not apps:
            return config
        installs = {app: await self.providers.installs(app) for app in apps}
        return expand(config, installs)

    async def refresh_installs(self) -> bool:
        """Start or stop per-install flow instances as apps are installed and removed."""
        async with self._reload_lock:
            config = await self._expanded(self.file_config)
            if [f.name for f in config.flows] == [f.name for f in self.config.flows]:
                return False
            polled_before = await self._polled_before(config)
            self._switch(config, polled_before)
            await self._claim_connections()
            log.info("flow_instances_changed", flows=len(config.flows))
            return True

    async def _claim_connections(self) -> None:
        # New connections are taken now rather than at the next heartbeat.
        try:
            await self.ownership.tick()
        except DB_ERRORS as exc:
            self._database_lost(exc)

    async def _installs_loop(self) -> None:
        while not self.stop.is_set():
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=INSTALLS_REFRESH)
            except TimeoutError:
                pass
            if self.stop.is_set():
                return
            try:
                await self.refresh_installs()
            except DB_ERRORS as exc:
                self._database_lost(exc)

    # -- the whole life -----------------------------------------------------------------------

    async def run(self) -> int:
        """Start every part in order, run until a stop signal, stop them in reverse.

        Each part goes on the exit stack as soon as it starts, so a failure at any step (a
        taken port, a lost database) unwinds exactly what had started, leases included, and
        the error reaches the caller instead of a half-started worker waiting forever.
        """
        loop = asyncio.get_running_loop()
        reloads: set[asyncio.Task[bool]] = set()

        def on_hup() -> None:
            task = asyncio.create_task(self.reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        async with AsyncExitStack() as stack:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_stop_signal, sig)
            loop.add_signal_handler(signal.SIGHUP, on_hup)
            stack.callback(_remove_signal_handlers, loop)
            self.http = await stack.enter_async_context(guarded_session(self.egress))
            await self.providers.ensure_connections()
            self.config = await self._expanded(self.file_config)
            # The ports are taken before any lease: a worker that cannot serve holds nothing.
            web_state = WebState(
                pool=self.rt.pool, scheduler_running=lambda: self.scheduler.running
            )
            if self.port is not None:
                app = build_app(web_state, routes=self._routes(), admin=self.admin_port is None)
                runner = await serve(app, self.host, self.port)
                stack.push_async_callback(runner.cleanup)
            if self.admin_port is not None:
                admin_runner = await serve(
                    build_admin_app(web_state, self.admin_access, self._admin_routes()),
                    self.admin_host,
                    self.admin_port,
                    listener="admin",
                )
                stack.push_async_callback(admin_runner.cleanup)
            self.ownership.set_connections(owned_connections(self.config))
            stack.push_async_callback(self.ownership.release_all)
            await self.ownership.tick()
            ownership = asyncio.create_task(self.ownership.run(self.stop), name="ownership")
            stack.push_async_callback(self._join, ownership)
            installs = asyncio.create_task(self._installs_loop(), name="installs")
            stack.push_async_callback(self._join, installs)
            poll_runs = asyncio.create_task(
                self.poll_runs.run(self._poll_runs_stop), name="poll-runs"
            )
            # Stopped after the polls drained, so their quiet rows are written too.
            stack.push_async_callback(self._stop_poll_runs, poll_runs)
            polled_before = await self._polled_before(self.config)
            self._start_dispatcher()
            self.scheduler.start(self.config.flows, polled_before)
            stack.push_async_callback(self._drain)
            log.info(
                "worker_started",
                worker=self.rt.worker_id,
                flows=len(self.config.flows),
                connections=len(self.config.connections),
                owned=sorted(self.ownership.owned),
                port=self.port,
                admin_port=self.admin_port,
            )
            # Then stop taking new work, let what is in flight finish (bounded), and let go:
            # the stack unwinds polls and deliveries, background loops, leases, web servers.
            await self.stop.wait()
        log.info("worker_stopped", worker=self.rt.worker_id)
        return 0

    async def _drain(self) -> None:
        # Polls and deliveries drain side by side against one deadline, so --drain bounds
        # the whole shutdown, not each half of it.
        await asyncio.gather(self.scheduler.shutdown(self.drain), self._stop_dispatcher(self.drain))

    async def _stop_poll_runs(self, task: asyncio.Task[None]) -> None:
        self._poll_runs_stop.set()
        with suppress(*DB_ERRORS):
            await task

    async def _join(self, task: asyncio.Task[None]) -> None:
        # On a failed start nothing set the stop event yet; the loop must still end.
        self.stop.set()
        await task

    def _admin_routes(self) -> list[Any]:
        source = StatusSource(
            pool=self.rt.pool,
            flows=lambda: list(self.config.flows),
            next_poll=self.scheduler.next_poll,
        )
        return status_routes(source)

    def _routes(self) -> list[Any]:
        from connector.auth.app_directory import app_directory_routes
        from connector.intake import WebhookIntake

        intake = WebhookIntake(
            self.rt.pool,
            lambda: self.config,
            self.rt.worker_id,
            client=self.providers.sendpulse,
            poll_now=self.scheduler.run_now,
        )
        routes: list[Any] = [*self.extra_routes, *intake.routes()]
        routes += app_directory_routes(
            apps=self.file_config.apps,
            session=self.rt.session,
            pool=self.rt.pool,
            cipher=self.providers.cipher,
        )
        return routes


def _remove_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.remove_signal_handler(sig)


async def run(
    config: Config,
    *,
    config_path: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = 8080,
    drain: float = 30.0,
    admin_host: str = "127.0.0.1",
    admin_port: int | None = None,
) -> int:
    """Run a worker until SIGINT or SIGTERM; return the exit code."""
    access = AdminAccess.from_env()
    if admin_port is not None:
        # Refused before the database is touched: an exposed admin port is a config error.
        access.check_binding(admin_host)
    async with runtime() as rt:
        worker = Worker(
            rt,
            config,
            config_path=config_path,
            host=host,
            port=port,
            drain=drain,
            admin_host=admin_host,
            admin_port=admin_port,
            admin_access=access,
        )
        return await worker.run()
