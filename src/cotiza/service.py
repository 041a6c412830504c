"""The running service: its components, started in dependency order and stopped in reverse.

Composition only: what each component does lives in its own module; here they are built,
wired together (every quote-cache listener is registered below, in one place) and handed
to request handlers as ``Services``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from cotiza.alerts.delivery import WebhookSender
from cotiza.alerts.engine import AlertEngine
from cotiza.cache import QuoteCache
from cotiza.calendar import MarketCalendar
from cotiza.cluster.health import cluster_checks
from cotiza.cluster.node import ClusterNode
from cotiza.dashboard_worker import DashboardQuery, DashboardWorker
from cotiza.feed_runner import FeedRunner
from cotiza.health import HealthAssessor
from cotiza.models import Quote
from cotiza.ratio_engine import RatioEngine
from cotiza.settings import Settings
from cotiza.storage.alerts import AlertStore
from cotiza.storage.database import Database
from cotiza.storage.demo import backfill_demo
from cotiza.storage.repository import Repository
from cotiza.storage.writer import Writer
from cotiza.telegram.bot import TelegramBot
from cotiza.telegram.commands import COMMANDS, BotCommands
from cotiza.vitals import LoopLagProbe, ProcessStats
from cotiza.ws.frames import CLOSE_GOING_AWAY, CLOSE_SERVICE_RESTART
from cotiza.ws.hub import Hub

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Every component of one running service, handed to request handlers."""

    settings: Settings
    calendar: MarketCalendar
    database: Database
    repository: Repository
    writer: Writer
    cache: QuoteCache
    hub: Hub
    ratios: RatioEngine
    dashboard_query: DashboardQuery
    dashboard: DashboardWorker
    feed: FeedRunner
    lag: LoopLagProbe
    process: ProcessStats
    health: HealthAssessor
    alert_store: AlertStore
    alerts: AlertEngine
    bot: TelegramBot | None = None
    cluster: ClusterNode | None = None  # None: standalone (BACKPLANE unset)
    started_at: float = field(default_factory=time.time)
    _draining: bool = field(default=False, init=False)

    @property
    def draining(self) -> bool:
        """True once ``drain()`` ran: readiness fails until ``undrain()`` or a restart."""
        return self._draining

    async def drain(self) -> int:
        """Before a planned restart: refuse new WebSocket clients, close the others with 1012.

        Readiness fails from now on. A cluster leader first hands the upstream session over
        (break before make), so a planned restart never leaves the cluster without a feed
        for longer than a takeover. Returns how many clients were closed.
        """
        if self.cluster is not None and await self.cluster.handover():
            log.info("drain: upstream handed over before closing clients")
        self._draining = True
        self.hub.stop_accepting()
        return await self.hub.close_all(CLOSE_SERVICE_RESTART, "Service restart")

    def undrain(self) -> bool:
        """Undo ``drain()``: accept WebSocket clients and pass readiness again.

        False when the service was not draining (nothing to undo).
        """
        if not self._draining:
            return False
        self._draining = False
        self.hub.resume_accepting()
        return True

    async def close_clients(self) -> int:
        """At shutdown: refuse new WebSocket clients and close the others with 1001.

        Bounded by half of ``SHUTDOWN_TIMEOUT``; the rest is left for the components.
        Idempotent. Returns how many clients were asked to close.
        """
        self.hub.stop_accepting()
        count = len(self.hub.connections)
        try:
            async with asyncio.timeout(self.settings.shutdown_timeout / 2):
                await self.hub.close_all(CLOSE_GOING_AWAY, "Server shutting down")
        except TimeoutError:
            log.warning("WebSocket clients did not close in time")
        return count


@contextlib.asynccontextmanager
async def run_services(settings: Settings) -> AsyncIterator[Services]:
    """Start every component in dependency order; stop them in reverse on exit."""
    calendar = MarketCalendar.from_settings(settings)
    async with contextlib.AsyncExitStack() as stack:
        database = Database(
            settings.database_url,
            busy_timeout=settings.sqlite_busy_timeout,
            connect_timeout=settings.database_connect_timeout,
        )
        # Unreachable: start anyway (live quotes need no database) and retry meanwhile.
        await database.start_or_retry()
        stack.push_async_callback(database.stop)

        repository = Repository(database)
        writer = Writer(database, settings)
        await writer.start()
        stack.push_async_callback(writer.stop, settings.shutdown_timeout)

        cache = QuoteCache(calendar, settings.quote_stale_after)

        hub = Hub(settings)
        await hub.start()
        stack.push_async_callback(hub.stop, CLOSE_GOING_AWAY, "Server shutting down")

        if settings.demo_history_days and database.running:
            await backfill_demo(settings, database, repository)

        feed = FeedRunner(settings, cache)
        ratios = RatioEngine(
            settings,
            cache,
            repository,
            writer,
            hub,
            calendar,
            feed_down=lambda: feed.feed_down,
            live_since=lambda: feed.live_since,
        )
        await ratios.start()
        stack.push_async_callback(ratios.stop)

        query = DashboardQuery(repository, calendar, settings.ratio_field.value)
        dashboard = DashboardWorker(settings, hub, query)
        stack.push_async_callback(dashboard.stop)

        lag = LoopLagProbe(
            settings.loop_lag_interval, settings.loop_lag_window, settings.shutdown_timeout
        )
        await lag.start()
        stack.push_async_callback(lag.stop)

        node: ClusterNode | None = None
        if settings.cluster:
            node = ClusterNode(
                settings,
                cache=cache,
                hub=hub,
                ratios=ratios,
                writer=writer,
                dashboard=dashboard,
                feed=feed,
            )

        # Every quote-cache listener, in one place. Each only enqueues work; the order is
        # storage, WebSocket fan-out, ratios. In cluster mode the bus comes before the
        # fan-out: the leader writes the tick to Redis first, so the other nodes' clients
        # do not wait for this node's own (only the leader stores and publishes).
        # Removed before the components stop.
        listeners: tuple[Callable[[Quote], object], ...] = (
            writer.submit_tick,
            hub.publish_tick,
            ratios.on_tick,
        )
        if node is not None:
            listeners = (node.store_tick, node.publish_tick, hub.publish_tick, ratios.on_tick)
        for listener in listeners:
            cache.add_listener(listener)
        for listener in listeners:
            stack.callback(cache.remove_listener, listener)

        alert_store = AlertStore(database)
        alerts = AlertEngine(settings, alert_store, ratios, hub, WebhookSender(settings))

        stack.push_async_callback(feed.close)
        if settings.feed_autostart and node is None:
            await feed.start()  # in cluster mode, the lease holder starts it

        process = ProcessStats()
        services = Services(
            settings=settings,
            calendar=calendar,
            database=database,
            repository=repository,
            writer=writer,
            cache=cache,
            hub=hub,
            ratios=ratios,
            dashboard_query=query,
            dashboard=dashboard,
            feed=feed,
            lag=lag,
            process=process,
            health=HealthAssessor(
                settings,
                calendar=calendar,
                database=database,
                writer=writer,
                cache=cache,
                hub=hub,
                ratios=ratios,
                dashboard=dashboard,
                feed=feed,
                lag=lag,
                process=process,
            ),
            alert_store=alert_store,
            alerts=alerts,
            cluster=node,
        )
        services.health.add_check(alerts.check)
        if settings.telegram_enabled:
            services.bot = TelegramBot(settings, BotCommands(services), COMMANDS)
            services.health.add_check(services.bot.check)
            alerts.telegram = services.bot.broadcast
            if node is None:
                await services.bot.start()
            stack.push_async_callback(services.bot.stop)
        elif settings.telegram_bot_token is not None:
            log.warning("Telegram bot disabled: no TELEGRAM_CHAT_IDS (nor TELEGRAM_CHAT_ID)")
        database.on_ready(ratios.load_pairs)  # after a deferred start: what start() skipped
        database.on_ready(alerts.reload)
        if node is None:
            await alerts.start()  # stops before the bot, so its last firings can still be sent
        stack.push_async_callback(alerts.stop)
        if node is not None:
            # One alert engine and one Telegram poller per cluster: the leader's.
            node.alerts, node.bot = alerts, services.bot
            for check in cluster_checks(node):
                services.health.add_check(check)
            services.health.following = node.following
            await node.start()
            stack.push_async_callback(node.stop)  # first: hand upstream over before the rest
        log.info(
            "cotiza started (feed=%s, database=%s, role=%s)",
            settings.feed.value,
            database.dialect,
            settings.role.value if node is not None else "standalone",
        )
        yield services
        log.info("cotiza shutting down")
