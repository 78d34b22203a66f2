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
from collections.abc import Collection
from contextlib import AsyncExitStack, suppress
from datetime import timedelta
from typing import Any

import aiohttp
import structlog

from connector.admin import AdminAccess, build_admin_app
from connector.config import Config, load_file
from connector.db.health import DB_ERRORS, DatabaseHealth
from connector.dispatch import Dispatcher
from connector.egress import EgressPolicy, guarded_session
from connector.engine import Poller
from connector.errors import ConfigError, ConfigInvalid
from connector.instances import apps_used, expand
from connector.ownership import DEFAULT_TTL, Ownership
from connector.poll_job import PollJob
from connector.poll_runs import PollRunBook
from connector.providers.provider_clients import ProviderClients
from connector.runtime import Runtime as Runtime
from connector.runtime import runtime as runtime
from connector.scheduler import FlowScheduler
from connector.status_page import StatusSource, status_routes
from connector.store import flow_states
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
        # Shorter leases (CONNECTOR_LEASE_TTL for connections and their polls,
        # CONNECTOR_DELIVERY_LEASE for deliveries) let a dead worker's work move on sooner.
        connection_lease = env_lease("CONNECTOR_LEASE_TTL")
        delivery_lease = env_lease("CONNECTOR_DELIVERY_LEASE")
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
        # This worker's polls in progress and the connection leases they share.
        self.poller = Poller()
        # Quiet polls' poll_runs rows, written once a second for all of them.
        self.poll_runs = PollRunBook(rt.pool, rt.worker_id)
        self._poll_runs_stop = asyncio.Event()
        self.providers = self._providers(config)
        self.polls = PollJob(
            config=lambda: self.config,
            pool=rt.pool,
            worker_id=rt.worker_id,
            ownership=self.ownership,
            providers=self.providers,
            poller=self.poller,
            runs=self.poll_runs,
            health=self.health,
            lease_ttl=connection_lease,
        )
        self.scheduler = FlowScheduler(self._poll)
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

    async def _poll(self, flow_name: str) -> None:
        """The scheduler's job: one poll of ``flow_name`` (see :class:`PollJob`)."""
        await self.polls.run(flow_name)

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
