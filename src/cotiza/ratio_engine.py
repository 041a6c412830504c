"""RatioEngine: live ratios on relevant ticks (coalesced) and periodic stored samples."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from cotiza.cache import QuoteCache
from cotiza.calendar import MarketCalendar
from cotiza.hub import Hub
from cotiza.models import Indicators, Quote, RatioPair, RatioSample, RatioValues
from cotiza.ratios import DEFAULT_PAIRS, RollingIndicators, compute_ratios
from cotiza.settings import Settings
from cotiza.storage.repository import Repository
from cotiza.storage.writer import Writer

log = logging.getLogger(__name__)

# Called with (pair, message) for every live ratio message published; must not block.
RatioListener = Callable[[RatioPair, dict[str, Any]], None]


class RatioEngine:
    """Keeps every active pair's latest ratios and rolling indicators.

    Ticks only mark pairs dirty; one publisher task recomputes the dirty pairs at most
    every ``RATIO_PUBLISH_INTERVAL`` and pushes each result once to the hub, so the cost
    does not grow with ticks times clients. A sampler task stores a sample of every pair each
    ``RATIO_SAMPLE_INTERVAL``; the rolling windows are warm-started from stored history.
    """

    def __init__(
        self,
        settings: Settings,
        cache: QuoteCache,
        repository: Repository,
        writer: Writer,
        hub: Hub,
        calendar: MarketCalendar,
        feed_down: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.feed_down = feed_down
        self.cache = cache
        self.repository = repository
        self.writer = writer
        self.hub = hub
        self.calendar = calendar
        self.pairs: dict[int, RatioPair] = {}
        self._by_symbol: dict[str, set[int]] = {}
        self._windows: dict[int, RollingIndicators] = {}
        self.last_samples: dict[int, RatioSample] = {}
        self._dirty: set[int] = set()
        self._dirty_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.samples_taken = 0
        self.publishes = 0
        self.last_sample_at: float | None = None
        self._listeners: list[RatioListener] = []

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        if self._tasks:
            return
        seeded = await self.repository.seed_pairs(DEFAULT_PAIRS)
        if seeded:
            log.info("seeded %d default ratio pairs", seeded)
        await self.reload_pairs()
        self.cache.add_listener(self.on_tick)
        self._tasks = [
            asyncio.create_task(self._publish_loop(), name="ratio-publisher"),
            asyncio.create_task(self._sample_loop(), name="ratio-sampler"),
        ]

    async def stop(self) -> None:
        self.cache.remove_listener(self.on_tick)
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def workers(self) -> dict[str, bool]:
        names = ("ratio_publisher", "ratio_sampler")
        if not self._tasks:
            return dict.fromkeys(names, False)
        return {name: not task.done() for name, task in zip(names, self._tasks, strict=True)}

    async def reload_pairs(self) -> None:
        """Re-read active pairs from the database (after any change through the API)."""
        pairs = await self.repository.list_pairs(active_only=True)
        self.pairs = {p.id: p for p in pairs}
        index: dict[str, set[int]] = {}
        for pair in pairs:
            index.setdefault(pair.base, set()).add(pair.id)
            index.setdefault(pair.quote, set()).add(pair.id)
        self._by_symbol = index
        for pair_id in list(self._windows):
            if pair_id not in self.pairs:
                del self._windows[pair_id]
                self.last_samples.pop(pair_id, None)
        for pair in pairs:
            if pair.id not in self._windows:
                window = RollingIndicators()
                history = await self.repository.recent_samples(pair.id, limit=180)
                window.warm(s.values for s in history)
                self._windows[pair.id] = window
                if history:
                    self.last_samples[pair.id] = history[-1]
        self._dirty.update(self.pairs)
        self._dirty_event.set()

    def add_listener(self, listener: RatioListener) -> None:
        """Also hand every published ratio message to ``listener`` (e.g. market alerts)."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_listener(self, listener: RatioListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- live ratios ---------------------------------------------------------------

    def on_tick(self, quote: Quote) -> None:
        pair_ids = self._by_symbol.get(quote.symbol)
        if pair_ids:
            self._dirty.update(pair_ids)
            self._dirty_event.set()

    def _stale_after(self, now: float) -> float:
        if self.feed_down():
            # Disconnected from upstream: every cached quote is stale, whatever its age.
            return -math.inf
        # Outside the session prices legitimately stop; the last one stays valid.
        return self.settings.quote_stale_after if self.calendar.is_open(now) else math.inf

    def compute(self, pair: RatioPair, now: float) -> RatioValues:
        return compute_ratios(
            pair,
            self.cache.get(pair.base),
            self.cache.get(pair.quote),
            now,
            self._stale_after(now),
        )

    def message(
        self, pair: RatioPair, now: float, values: RatioValues, ind: Indicators
    ) -> dict[str, Any]:
        return {
            "type": "ratio",
            "pair_id": pair.id,
            "par": pair.name,
            "base": pair.base,
            "quote": pair.quote,
            "factor": pair.factor,
            "client_id": pair.client_id,
            "asof": now,
            **asdict(values),
            **asdict(ind),
        }

    def _refresh(self, pair_ids: set[int]) -> None:
        now = time.time()
        for pair_id in pair_ids:
            pair = self.pairs.get(pair_id)
            window = self._windows.get(pair_id)
            if pair is None or window is None:
                continue
            values = self.compute(pair, now)
            message = self.message(pair, now, values, window.peek(values))
            self.hub.publish_ratio(pair_id, message)
            self.publishes += 1
            for listener in self._listeners:
                listener(pair, message)

    async def _publish_loop(self) -> None:
        interval = self.settings.ratio_publish_interval
        while True:
            await self._dirty_event.wait()
            if interval:
                await asyncio.sleep(interval)  # coalesce a burst of ticks into one push
            self._dirty_event.clear()
            dirty, self._dirty = self._dirty, set()
            try:
                self._refresh(dirty)
            except Exception:
                log.exception("ratio refresh failed; continuing with the next ticks")

    # -- samples -------------------------------------------------------------------

    def take_samples(self, now: float) -> list[RatioSample]:
        """Compute one sample per active pair with a value (pure apart from the windows)."""
        samples = []
        for pair in self.pairs.values():
            values = self.compute(pair, now)
            if all(v is None for v in asdict(values).values()):
                continue  # nothing observed: a stored row of nulls would only mislead
            indicators = self._windows[pair.id].push(values)
            sample = RatioSample(pair.id, now, values, indicators)
            self.last_samples[pair.id] = sample
            samples.append(sample)
        return samples

    async def _sample_loop(self) -> None:
        interval = self.settings.ratio_sample_interval
        loop = asyncio.get_running_loop()
        next_at = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += interval
            if next_at < loop.time():  # fell behind (suspended): skip, don't burst
                next_at = loop.time() + interval
            try:
                samples = self.take_samples(time.time())
                for sample in samples:
                    await self.writer.submit_sample(sample)
                self.samples_taken += len(samples)
                self.last_sample_at = time.time()
            except Exception:
                log.exception("ratio sampling failed; retrying next interval")

    def current(self, pair_id: int) -> dict[str, Any] | None:
        """The ratio message of one active pair, computed now; None for an unknown pair."""
        pair = self.pairs.get(pair_id)
        window = self._windows.get(pair_id)
        if pair is None or window is None:
            return None
        now = time.time()
        values = self.compute(pair, now)
        return self.message(pair, now, values, window.peek(values))

    def snapshot(self) -> list[dict[str, Any]]:
        """The ratio message of every active pair, computed now from the cached quotes.

        Never the last pushed message: pushes happen only on ticks, so once the feed goes
        quiet that message would keep numbers whose quotes have since gone stale.
        """
        now = time.time()
        out = []
        for pair_id, pair in self.pairs.items():
            values = self.compute(pair, now)
            out.append(self.message(pair, now, values, self._windows[pair_id].peek(values)))
        return out

    def resolve(self, specs: list[Any]) -> tuple[list[int], list[str]]:
        """Map pair specs (ids, "AL30-AL30D" names or "BASE/QUOTE") to ids; return unknowns."""
        found: list[int] = []
        unknown: list[str] = []
        for spec in specs:
            matches = [
                p.id
                for p in self.pairs.values()
                if spec in (p.id, str(p.id), p.name, f"{p.base}/{p.quote}")
            ]
            if matches:
                found.extend(matches)
            else:
                unknown.append(str(spec))
        return list(dict.fromkeys(found)), unknown
