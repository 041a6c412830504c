"""The dashboard table: its query and the single broadcast worker that pushes it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Literal

from typing_extensions import TypedDict

from cotiza.calendar import MarketCalendar
from cotiza.dashboard import DashboardRowData, build_dashboard_rows, dashboard_windows
from cotiza.settings import Settings
from cotiza.storage.repository import Repository
from cotiza.tasks import cancel_and_wait
from cotiza.ws import frames
from cotiza.ws.connection import Connection
from cotiza.ws.frames import DashboardTable, Wire, encode
from cotiza.ws.hub import Hub

log = logging.getLogger(__name__)

# Every table is computed on request from the per-minute/hour/day aggregates and raw edges.
DASHBOARD_METHOD = "aggregates"


class DashboardResult(TypedDict):
    """The dashboard table as ``/api/ratios/dashboard`` returns it (and ``dashboard_data``)."""

    status: Literal["success"]
    data: list[DashboardRowData]
    count: int
    query_time_ms: float


class DashboardWorkerStatus(TypedDict):
    """The broadcast worker's state, as ``/cotizaciones/status`` reports it."""

    state: str
    running: bool
    subscribers: int
    max_subscribers: int
    refresh_interval: float
    runs: int
    starts: int
    errors: int
    last_error: str | None
    cached_at: float | None
    started_at: float | None
    pinned: bool


class DashboardQuery:
    """Computes the dashboard table; the HTTP endpoint and the worker share it."""

    def __init__(self, repository: Repository, calendar: MarketCalendar, field: str) -> None:
        self.repository = repository
        self.calendar = calendar
        self.field = field

    async def __call__(self, now: float | None = None) -> DashboardTable:
        """The table at ``now`` (default: the wall clock, read once for every window)."""
        started = time.perf_counter()
        now = time.time() if now is None else now
        pairs = await self.repository.list_pairs(active_only=True)
        windows = dashboard_windows(now, self.calendar)
        stats = await self.repository.window_stats_many(list(windows.items()), field=self.field)
        latest = await self.repository.latest_values(self.field)
        rows = build_dashboard_rows(pairs, latest, stats)
        elapsed_ms = (time.perf_counter() - started) * 1000
        return {
            "status": "success",
            "data": [row.as_dict() for row in rows],
            "count": len(rows),
            "query_time_ms": round(elapsed_ms, 2),
            "method": DASHBOARD_METHOD,
            "freshness": "real-time",
        }


class WorkerState(StrEnum):
    STOPPED = "stopped"
    RUNNING = "running"
    STOPPING = "stopping"


class DashboardWorker:
    """Exactly one per process: started by the first subscriber, stopped by the last.

    It owns its task and its stop event (nothing shared with other workers), waits on
    that event with ``DASHBOARD_REFRESH_INTERVAL`` as the timeout, and caches the last
    snapshot so a new subscriber gets data at once.
    """

    def __init__(self, settings: Settings, hub: Hub, query: DashboardQuery) -> None:
        self.settings = settings
        self.hub = hub
        self.query = query
        self.state = WorkerState.STOPPED
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self.cached: Wire | None = None  # the last dashboard_data, serialised
        self.cached_at: float | None = None
        self.runs = 0
        self.starts = 0
        self.errors = 0
        self.last_error: str | None = None
        self.started_at: float | None = None
        # Started by an operator (``/dashboard/start``): runs without subscribers until stopped.
        self.pinned = False
        # Cluster mode: a leader queries every interval for every node (``always``) and
        # hands each frame to ``on_frame`` (the bus); a follower runs no query (``relay``)
        # and gets the leader's frames through ``relay_frame``.
        self.always = False
        self.relay = False
        self.on_frame: Callable[[Wire], None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def subscribers(self) -> int:
        return self.hub.dashboard_subscribers

    async def subscribe(self, conn: Connection) -> bool:
        """Add a subscriber; False when ``DASHBOARD_MAX_SUBSCRIBERS`` is reached."""
        if self.hub.follows_dashboard(conn):
            return True
        if self.subscribers >= self.settings.dashboard_max_subscribers:
            return False
        self.hub.subscribe_dashboard(conn)
        if not self.relay:
            await self._ensure_running()
        return True

    async def unsubscribe(self, conn: Connection) -> None:
        self.hub.unsubscribe_dashboard(conn)
        if not self.hub.dashboard_subscribers and not self.always and not self.pinned:
            await self.stop()

    async def lead(self) -> None:
        """Cluster leader: run the query every interval, subscribers here or not."""
        self.relay = False
        self.always = True
        await self._ensure_running()

    async def follow(self) -> None:
        """Cluster follower: stop querying; frames arrive through ``relay_frame``."""
        self.always = False
        self.relay = True
        await self.stop()

    def relay_frame(self, wire: Wire) -> None:
        """A frame the leader published: cache it for new subscribers and push it."""
        self.cached = wire
        self.cached_at = time.time()
        self.hub.publish_dashboard(wire)

    async def start_pinned(self) -> bool:
        """Run until ``stop_pinned`` whatever the subscribers; False if it already ran."""
        was_running = self.running
        self.pinned = True
        if not self.relay:  # a cluster follower gets the leader's frames instead
            await self._ensure_running()
        return not was_running and self.running

    async def stop_pinned(self) -> bool:
        """Stop at an operator's request; a later subscriber starts it again. False if idle."""
        was_running = self.running
        self.pinned = False
        if not self.always:  # a cluster leader keeps querying for the other nodes
            await self.stop()
        return was_running and not self.running

    async def _ensure_running(self) -> None:
        async with self._lock:
            if self.running:
                log.debug("dashboard worker already running")
                return
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self._run(self._stop), name="dashboard-worker")
            self.state = WorkerState.RUNNING
            self.started_at = time.time()
            self.starts += 1
            log.info("dashboard worker started")

    async def stop(self) -> None:
        """Signal the worker and wait for it; cancel it if it overruns the deadline."""
        async with self._lock:
            task = self._task
            if task is None:
                return
            self.state = WorkerState.STOPPING
            self._stop.set()
            try:
                async with asyncio.timeout(self.settings.shutdown_timeout):
                    await asyncio.shield(task)
            except TimeoutError:
                await cancel_and_wait(task, timeout=self.settings.shutdown_timeout)
            except Exception:
                log.exception("dashboard worker ended with an error")
            self._task = None
            self.started_at = None
            self.state = WorkerState.STOPPED
            log.info("dashboard worker stopped")

    async def _run(self, stop: asyncio.Event) -> None:
        interval = self.settings.dashboard_refresh_interval
        while not stop.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stop.wait()

    async def refresh(self) -> Wire:
        """Run the query once, cache and push the result (or a ``dashboard_error``)."""
        try:
            table = await self.query()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("dashboard query failed")
            wire = encode(frames.dashboard_error())
            self.hub.publish_dashboard(wire)
            return wire
        self.runs += 1
        wire = encode(frames.dashboard_data(table))
        self.cached = wire
        self.cached_at = time.time()
        self.hub.publish_dashboard(wire)
        if self.on_frame is not None:
            self.on_frame(wire)
        return wire

    def status(self) -> DashboardWorkerStatus:
        return {
            "state": self.state.value,
            "running": self.running,
            "subscribers": self.subscribers,
            "max_subscribers": self.settings.dashboard_max_subscribers,
            "refresh_interval": self.settings.dashboard_refresh_interval,
            "runs": self.runs,
            "starts": self.starts,
            "errors": self.errors,
            "last_error": self.last_error,
            "cached_at": self.cached_at,
            "started_at": self.started_at,
            "pinned": self.pinned,
        }
