"""FeedRunner: owns the running feed task; start, stop and restart in any order."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from enum import StrEnum

from typing_extensions import TypedDict

from cotiza.cache import QuoteCache
from cotiza.errors import FatalFeedError, InvalidRequestError
from cotiza.feeds import Feed, create_feed
from cotiza.feeds.base import FeedState
from cotiza.models import symbol_resolver
from cotiza.settings import Settings
from cotiza.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class RunnerState(StrEnum):
    STOPPED = "stopped"
    RUNNING = "running"
    FAILED = "failed"


class FeedStatus(TypedDict):
    """The feed's state and counters, as ``/cotizaciones/status`` and the controls report."""

    state: str
    feed: str
    connection: str
    instruments: list[str]
    started_at: float | None
    uptime: float | None
    last_tick_age: float | None
    starts: int
    last_error: str | None
    frames: int
    quotes: int
    reconnects: int
    errors: int
    last_feed_error: str | None
    counters: dict[str, int | float]


class FeedRunner:
    """Runs one feed at a time as a tracked task and reports its state.

    Every transition goes through one ``asyncio.Lock`` so concurrent control requests
    (start while stopping, two restarts at once) serialise instead of racing.
    """

    def __init__(
        self,
        settings: Settings,
        cache: QuoteCache,
        feed_factory: Callable[[Settings], Feed] = create_feed,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self._factory = feed_factory
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.feed: Feed | None = None
        self.state = RunnerState.STOPPED
        self.instruments: list[str] = []
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.starts = 0
        self.last_error: str | None = None
        self.stopped_by_request = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def feed_down(self) -> bool:
        """True while the feed has lost its upstream (reconnecting or failed): quotes are stale."""
        feed = self.feed
        return feed is not None and feed.state in (FeedState.RECONNECTING, FeedState.FAILED)

    @property
    def live_since(self) -> float | None:
        """Wall clock since which the feed has been connected without a break, or None.

        None unless the feed task runs and the feed is CONNECTED: stopped by the operator,
        never started, finished, connecting, reconnecting or failed all give None. Quotes
        received before this moment belong to an earlier connection and are not live.
        """
        feed = self.feed
        if not self.running or feed is None or feed.state is not FeedState.CONNECTED:
            return None
        return feed.connected_at

    def configured_instruments(self) -> list[str]:
        if self.settings.feed_instruments:
            return list(self.settings.feed_instruments)
        probe = self._factory(self.settings)
        return probe.catalogue()

    def known_symbols(self) -> set[str]:
        """Every symbol the feed can deliver: its catalogue, configured and running instruments,
        and whatever the cache holds. Empty when none is known yet (a replay before it ran)."""
        known = set(self._factory(self.settings).catalogue())
        if self.feed is not None:
            known.update(self.feed.catalogue())
        known.update(self.settings.feed_instruments)
        known.update(self.instruments)
        known.update(self.cache.symbols())
        return known

    def check_instruments(self, instruments: Sequence[str]) -> list[str]:
        """The instruments a start would use; ``InvalidRequestError`` naming unknown ones."""
        return self._validate(self._factory(self.settings), instruments)

    def _validate(self, feed: Feed, instruments: Sequence[str]) -> list[str]:
        wanted = list(dict.fromkeys(s.strip() for s in instruments if s.strip()))
        catalogue = feed.catalogue()
        if not wanted:
            wanted = list(self.settings.feed_instruments) or catalogue
        if catalogue:
            resolve = symbol_resolver(catalogue)
            resolved = [resolve(s) for s in wanted]
            unknown = [s for s, r in zip(wanted, resolved, strict=True) if r is None]
            if unknown:
                raise InvalidRequestError(f"unknown instruments: {', '.join(unknown)}")
            wanted = list(dict.fromkeys(r for r in resolved if r is not None))
        return wanted

    async def start(self, instruments: Sequence[str] = ()) -> bool:
        """Start the feed; returns False when it was already running the same instruments."""
        async with self._lock:
            feed = self._factory(self.settings)
            wanted = self._validate(feed, instruments)
            if self.running:
                if wanted == self.instruments:
                    return False
                await self._stop_locked()
            self._launch(feed, wanted)
            return True

    async def stop(self) -> bool:
        """Stop the feed; returns False when nothing was running."""
        async with self._lock:
            self.stopped_by_request = True
            return await self._stop_locked()

    async def restart(self, instruments: Sequence[str] = ()) -> None:
        """Stop whatever runs and start again, with the last (or configured) instruments."""
        async with self._lock:
            feed = self._factory(self.settings)
            wanted = self._validate(feed, instruments or self.instruments)
            await self._stop_locked()
            self._launch(feed, wanted)

    def _launch(self, feed: Feed, instruments: list[str]) -> None:
        self.feed = feed
        self.instruments = instruments
        self.state = RunnerState.RUNNING
        self.started_at = time.time()
        self.last_error = None
        self.stopped_by_request = False
        self.starts += 1
        self._task = asyncio.create_task(self._run(feed, instruments), name=f"feed-{feed.name}")
        log.info("feed %s started with %d instruments", feed.name, len(instruments))

    async def _run(self, feed: Feed, instruments: list[str]) -> None:
        try:
            await feed.run(instruments, self.cache.apply)
        except asyncio.CancelledError:
            raise
        except FatalFeedError as exc:
            self.state = RunnerState.FAILED
            self.last_error = str(exc)
            log.error("feed %s stopped for good: %s", feed.name, exc)
        except Exception as exc:
            self.state = RunnerState.FAILED
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("feed %s crashed", feed.name)
        else:
            self.state = RunnerState.STOPPED
            log.info("feed %s finished", feed.name)

    async def _stop_locked(self) -> bool:
        task = self._task
        if task is None:
            return False
        self._task = None
        was_running = not task.done()
        if was_running:
            await cancel_and_wait(task, timeout=self.settings.shutdown_timeout)
        if self.feed is not None and self.feed.state is not FeedState.FAILED:
            self.feed.state = FeedState.STOPPED
        if self.state is RunnerState.RUNNING:
            self.state = RunnerState.STOPPED
        self.stopped_at = time.time()
        if was_running:
            log.info("feed stopped")
        return was_running

    async def close(self) -> None:
        """Stop for shutdown (does not count as an operator request)."""
        async with self._lock:
            await self._stop_locked()

    def status(self, now: float | None = None) -> FeedStatus:
        now = now or time.time()
        feed = self.feed
        last = self.cache.last_update_at
        return {
            "state": self.state.value,
            "feed": self.settings.feed.value,
            "connection": feed.state.value if feed else FeedState.IDLE.value,
            "instruments": list(self.instruments),
            "started_at": self.started_at,
            "uptime": (now - self.started_at) if self.started_at and self.running else None,
            "last_tick_age": (now - last) if last else None,
            "starts": self.starts,
            "last_error": self.last_error,
            "frames": feed.stats.frames if feed else 0,
            "quotes": feed.stats.quotes if feed else 0,
            "reconnects": feed.stats.reconnects if feed else 0,
            "errors": feed.stats.errors if feed else 0,
            "last_feed_error": feed.stats.last_error if feed else None,
            "counters": dict(feed.stats.extra) if feed else {},
        }
