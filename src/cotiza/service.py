"""The running service: its components, started in dependency order and stopped in reverse."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from cotiza.alerts.delivery import WebhookSender
from cotiza.alerts.engine import AlertEngine
from cotiza.cache import QuoteCache
from cotiza.calendar import MarketCalendar
from cotiza.dashboard_worker import DashboardQuery, DashboardWorker
from cotiza.feed_runner import FeedRunner, RunnerState
from cotiza.health import (
    Check,
    LoopLagProbe,
    ProcessStats,
    Scope,
    Status,
    grade,
    timed_check,
)
from cotiza.hub import CLOSE_GOING_AWAY, Hub
from cotiza.ratio_engine import RatioEngine
from cotiza.ratios import DEFAULT_PAIRS
from cotiza.settings import Settings
from cotiza.storage.alerts import AlertStore
from cotiza.storage.database import Database
from cotiza.storage.repository import Repository
from cotiza.storage.writer import Writer
from cotiza.telegram.bot import TelegramBot
from cotiza.telegram.commands import COMMANDS, BotCommands

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
    alert_store: AlertStore
    alerts: AlertEngine
    bot: TelegramBot | None = None
    process: ProcessStats = field(default_factory=ProcessStats)
    started_at: float = field(default_factory=time.time)
    draining: bool = False

    # -- health ----------------------------------------------------------------------

    async def checks(self) -> list[Check]:
        s = self.settings
        now = time.time()
        lag = self.lag.current()
        checks = [
            Check(
                "event_loop:lag",
                grade(lag, s.loop_lag_warn, s.loop_lag_fail),
                round(lag * 1000, 2),
                "ms",
            ),
            self._feed_state(),
            self._feed_staleness(now),
            await timed_check(
                "database:responseTime", s.health_check_timeout, self._db_check, Scope.READINESS
            ),
            self._writes(),
            self._workers(),
            self._memory(),
            self._connections(),
            self.alerts.check(),
        ]
        if self.bot is not None:
            checks.append(self.bot.check())
        return checks

    def _feed_state(self) -> Check:
        runner = self.feed
        if runner.state is RunnerState.FAILED:
            return Check(
                "feed:state",
                Status.FAIL,
                runner.state.value,
                None,
                runner.last_error,
                Scope.READINESS,
            )
        if runner.state is RunnerState.STOPPED:
            note = "stopped on request" if runner.stopped_by_request else "not started"
            return Check("feed:state", Status.WARN, "stopped", None, note, Scope.READINESS)
        connection = runner.feed.state.value if runner.feed else "idle"
        status = Status.PASS if connection == "connected" else Status.WARN
        return Check("feed:state", status, connection, None, None, Scope.READINESS)

    def _feed_staleness(self, now: float) -> Check:
        s = self.settings
        last = self.cache.last_update_at
        open_now = self.calendar.is_open(now)
        if last is None:
            if self.feed.state is RunnerState.RUNNING and open_now:
                started = self.feed.started_at or now
                status = Status.FAIL if now - started > s.feed_warn_after else Status.WARN
                return Check(
                    "feed:staleness", status, None, "s", "no data received yet", Scope.READINESS
                )
            note = "no data received" + ("" if open_now else "; market closed")
            status = Status.WARN if open_now else Status.PASS
            return Check("feed:staleness", status, None, "s", note, Scope.READINESS)
        age = round(now - last, 3)
        if not open_now:
            return Check("feed:staleness", Status.PASS, age, "s", "market closed", Scope.READINESS)
        status = grade(age, s.feed_warn_after, s.feed_fail_after)
        return Check("feed:staleness", status, age, "s", None, Scope.READINESS)

    async def _db_check(self) -> Check:
        elapsed = await self.database.ping()
        return Check(
            "database:responseTime",
            Status.PASS if elapsed < 1.0 else Status.WARN,
            round(elapsed * 1000, 2),
            "ms",
            None,
            Scope.READINESS,
        )

    def _writes(self) -> Check:
        stats = self.writer.stats
        if stats.consecutive_failures:
            return Check(
                "database:writes",
                Status.FAIL,
                stats.pending,
                "pending",
                f"{stats.consecutive_failures} consecutive failures: {stats.last_error}",
                Scope.READINESS,
            )
        status = Status.WARN if stats.dropped_ticks else Status.PASS
        note = f"{stats.dropped_ticks} ticks dropped (queue full)" if stats.dropped_ticks else None
        return Check("database:writes", status, stats.pending, "pending", note, Scope.READINESS)

    def worker_states(self) -> dict[str, bool]:
        return {
            "writer": self.writer.running,
            "loop_lag_probe": self.lag.running,
            "dashboard_worker": self.dashboard.running,
            **self.ratios.workers(),
        }

    def _workers(self) -> Check:
        states = self.worker_states()
        required = {k: v for k, v in states.items() if k != "dashboard_worker"}
        dead = [name for name, alive in required.items() if not alive]
        if self.dashboard.subscribers and not self.dashboard.running:
            dead.append("dashboard_worker")
        if dead:
            return Check("workers:running", Status.FAIL, states, None, "dead: " + ", ".join(dead))
        return Check("workers:running", Status.PASS, states)

    def _memory(self) -> Check:
        rss = self.process.memory_mb()
        status = Status.WARN if rss > self.settings.memory_warn_mb else Status.PASS
        return Check("process:memory", status, round(rss, 1), "MiB")

    def _connections(self) -> Check:
        count = len(self.hub.connections)
        limit = self.settings.max_websocket_connections
        status = Status.WARN if count >= limit else Status.PASS
        return Check("websocket:connections", status, count, "connections")


@contextlib.asynccontextmanager
async def run_services(settings: Settings) -> AsyncIterator[Services]:
    """Start every component in dependency order; stop them in reverse on exit."""
    calendar = MarketCalendar.from_settings(settings)
    async with contextlib.AsyncExitStack() as stack:
        database = Database(settings.database_url)
        await database.start()
        stack.push_async_callback(database.stop)

        repository = Repository(database)
        writer = Writer(database, settings)
        await writer.start()
        stack.push_async_callback(writer.stop, settings.shutdown_timeout)

        cache = QuoteCache(calendar, settings.quote_stale_after)
        cache.add_listener(writer.submit_tick)

        hub = Hub(settings)
        await hub.start()
        stack.push_async_callback(hub.stop, CLOSE_GOING_AWAY, "Server shutting down")
        cache.add_listener(hub.publish_tick)

        if settings.demo_history_days:
            await _backfill_demo(settings, database, repository)

        feed = FeedRunner(settings, cache)
        ratios = RatioEngine(
            settings, cache, repository, writer, hub, calendar, feed_down=lambda: feed.feed_down
        )
        await ratios.start()
        stack.push_async_callback(ratios.stop)

        query = DashboardQuery(repository, calendar, settings.ratio_field.value)
        dashboard = DashboardWorker(settings, hub, query)
        stack.push_async_callback(dashboard.stop)

        lag = LoopLagProbe(settings.loop_lag_interval)
        await lag.start()
        stack.push_async_callback(lag.stop)

        alert_store = AlertStore(database)
        alerts = AlertEngine(settings, alert_store, ratios, hub, WebhookSender(settings))

        stack.push_async_callback(feed.close)
        if settings.feed_autostart:
            await feed.start()

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
            alert_store=alert_store,
            alerts=alerts,
        )
        if settings.telegram_enabled:
            services.bot = TelegramBot(settings, BotCommands(services), COMMANDS)
            alerts.telegram = services.bot.broadcast
            await services.bot.start()
            stack.push_async_callback(services.bot.stop)
        elif settings.telegram_bot_token is not None:
            log.warning("Telegram bot disabled: no TELEGRAM_CHAT_IDS (nor TELEGRAM_CHAT_ID)")
        await alerts.start()  # stops before the bot, so its last firings can still be sent
        stack.push_async_callback(alerts.stop)
        log.info("cotiza started (feed=%s, database=%s)", settings.feed.value, database.dialect)
        yield services
        log.info("cotiza shutting down")


async def _backfill_demo(settings: Settings, database: Database, repository: Repository) -> None:
    from cotiza.feeds.sim import SimFeed
    from cotiza.storage.demo import backfill_demo_history

    await repository.seed_pairs(DEFAULT_PAIRS)
    pairs = await repository.list_pairs(active_only=True)
    # Levels come from the simulator's opening quotes, so history joins the live data.
    sim = SimFeed(settings)
    quotes = {q.symbol: q for q in sim.select(sim.catalogue()).snapshot()}
    levels: dict[int, float] = {}
    for pair in pairs:
        base, quote = quotes.get(pair.base), quotes.get(pair.quote)
        if base and quote and base.mid and quote.mid:
            levels[pair.id] = pair.factor * base.mid / quote.mid
    written = await backfill_demo_history(
        database,
        pairs,
        levels,
        settings.demo_history_days,
        time.time(),
        settings.sim_seed,
        field=settings.ratio_field.value,
    )
    log.info("demo history: %d samples written", written)
