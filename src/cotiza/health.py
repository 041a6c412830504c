"""Health assessment in the shape of the IETF health-check draft.

``Check`` is one judged measurement; ``HealthAssessor`` judges the running components
(feed, cache, database, writer, workers, memory, connections, event loop) and is what the
health endpoints ask. The grading helpers are pure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, NotRequired

from typing_extensions import TypedDict

from cotiza.errors import CotizaError
from cotiza.feed_runner import RunnerState

if TYPE_CHECKING:
    from cotiza.cache import QuoteCache
    from cotiza.calendar import MarketCalendar
    from cotiza.dashboard_worker import DashboardWorker
    from cotiza.feed_runner import FeedRunner
    from cotiza.ratio_engine import RatioEngine
    from cotiza.settings import Settings
    from cotiza.storage.database import Database
    from cotiza.storage.writer import Writer
    from cotiza.vitals import LoopLagProbe, ProcessStats
    from cotiza.ws.hub import Hub

log = logging.getLogger(__name__)

ObservedValue = int | float | str | Mapping[str, bool | int | float | str | None] | None


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


class Scope(StrEnum):
    """What a failing check says about the service.

    A LIVENESS failure means the process itself is broken (restart it); a READINESS
    failure means something outside it is missing (database, upstream feed), which a
    restart cannot fix.
    """

    LIVENESS = "liveness"
    READINESS = "readiness"


class CheckItem(TypedDict):
    """One entry of ``checks`` in a health response (IETF health-check draft)."""

    status: str
    observedValue: ObservedValue
    time: str
    observedUnit: NotRequired[str]
    output: NotRequired[str]
    affects: str


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    observed_value: ObservedValue = None
    observed_unit: str | None = None
    output: str | None = None
    scope: Scope = Scope.LIVENESS

    def as_item(self, now: float) -> CheckItem:
        item = CheckItem(
            status=self.status.value,
            observedValue=self.observed_value,
            time=dt.datetime.fromtimestamp(now, dt.UTC).isoformat(),
            affects=self.scope.value,
        )
        if self.observed_unit:
            item["observedUnit"] = self.observed_unit
        if self.output:
            item["output"] = self.output
        return item


def grade(value: float, warn: float, fail: float) -> Status:
    if value >= fail:
        return Status.FAIL
    if value >= warn:
        return Status.WARN
    return Status.PASS


def overall(checks: list[Check]) -> Literal["healthy", "degraded", "unhealthy"]:
    """``unhealthy`` on a liveness failure, ``degraded`` on any other problem."""
    if any(c.status is Status.FAIL and c.scope is Scope.LIVENESS for c in checks):
        return "unhealthy"
    if any(c.status is not Status.PASS for c in checks):
        return "degraded"
    return "healthy"


def ready(checks: list[Check]) -> bool:
    return not any(c.status is Status.FAIL for c in checks)


def render(checks: list[Check], now: float) -> dict[str, list[CheckItem]]:
    out: dict[str, list[CheckItem]] = {}
    for check in checks:
        out.setdefault(check.name, []).append(check.as_item(now))
    return out


async def timed_check(
    name: str, timeout: float, probe: Callable[[], Awaitable[Check]], scope: Scope
) -> Check:
    """Run ``probe`` with a deadline; a timeout or an error is a failed check."""
    try:
        async with asyncio.timeout(timeout):
            return await probe()
    except TimeoutError:
        return Check(name, Status.FAIL, None, None, f"timed out after {timeout:g} s", scope)
    except CotizaError as exc:  # expected, e.g. StorageError for an unreachable database
        log.warning("health check %s failed: %r", name, exc)
        return Check(name, Status.FAIL, None, None, f"{type(exc).__name__}", scope)
    except Exception as exc:  # the probe's boundary: a bug, but still the check's result
        log.exception("health check %s crashed", name)
        return Check(name, Status.FAIL, None, None, f"{type(exc).__name__}", scope)


class HealthAssessor:
    """Judges the running components; read-only, it never changes what it looks at."""

    def __init__(
        self,
        settings: Settings,
        *,
        calendar: MarketCalendar,
        database: Database,
        writer: Writer,
        cache: QuoteCache,
        hub: Hub,
        ratios: RatioEngine,
        dashboard: DashboardWorker,
        feed: FeedRunner,
        lag: LoopLagProbe,
        process: ProcessStats,
    ) -> None:
        self.settings = settings
        self.calendar = calendar
        self.database = database
        self.writer = writer
        self.cache = cache
        self.hub = hub
        self.ratios = ratios
        self.dashboard = dashboard
        self.feed = feed
        self.lag = lag
        self.process = process
        self._extra: list[Callable[[], Check]] = []
        # Cluster mode: True while another node holds the upstream session (this one
        # follows the bus), so a feed that is not running here is the expected state.
        self.following: Callable[[], bool] = lambda: False

    def add_check(self, check: Callable[[], Check]) -> None:
        """Also judge ``check`` (a component's own, e.g. the alert engine's) every time."""
        self._extra.append(check)

    async def checks(self) -> list[Check]:
        s = self.settings
        now = time.time()
        lag = self.lag.current()
        return [
            Check(
                "event_loop:lag",
                grade(lag, s.loop_lag_warn, s.loop_lag_fail),
                round(lag * 1000, 2),
                "ms",
            ),
            *self._shared(self._feed_state(), self._feed_staleness(now)),
            await timed_check(
                "database:responseTime", s.health_check_timeout, self._db_check, Scope.READINESS
            ),
            self._writes(),
            self._workers(),
            self._memory(),
            self._connections(),
            *(check() for check in self._extra),
        ]

    def _shared(self, *checks: Check) -> list[Check]:
        """In cluster mode the upstream feed is shared: its faults warn, never un-ready.

        Every node would fail together otherwise (readiness is for node-local faults).
        """
        if not self.settings.cluster:
            return list(checks)
        return [
            dataclasses.replace(
                c, status=Status.WARN, output=f"shared by the cluster: {c.output or c.status}"
            )
            if c.status is Status.FAIL
            else c
            for c in checks
        ]

    def worker_states(self) -> dict[str, bool]:
        return {
            "writer": self.writer.running,
            "loop_lag_probe": self.lag.running,
            "dashboard_worker": self.dashboard.running,
            **self.ratios.workers(),
        }

    def _feed_state(self) -> Check:
        runner = self.feed
        if self.following():
            note = "following the cluster leader's feed over the backplane"
            return Check("feed:state", Status.PASS, "follower", None, note, Scope.READINESS)
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
            Status.PASS if elapsed < self.settings.database_slow_after else Status.WARN,
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

    def _workers(self) -> Check:
        states = self.worker_states()
        required = {k: v for k, v in states.items() if k != "dashboard_worker"}
        dead = [name for name, alive in required.items() if not alive]
        if self.dashboard.subscribers and not self.dashboard.running and not self.dashboard.relay:
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
