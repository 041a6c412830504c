"""RatioEngine: live ratios on relevant ticks (coalesced) and periodic stored samples."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

from cotiza.cache import QuoteCache
from cotiza.calendar import MarketCalendar
from cotiza.errors import StorageError
from cotiza.models import Quote, RatioPair, RatioSample, RatioValues
from cotiza.ratios import DEFAULT_PAIRS, RollingIndicators, compute_ratios
from cotiza.settings import Settings
from cotiza.storage.repository import Repository
from cotiza.storage.writer import Writer
from cotiza.tasks import cancel_and_wait
from cotiza.ws import frames
from cotiza.ws.frames import RatioFrame
from cotiza.ws.hub import Hub

log = logging.getLogger(__name__)

CATCH_UP_POLL = 0.1  # seconds between checks for live legs before an overdue round

# Called with (pair, message) for every live ratio message published; must not block.
RatioListener = Callable[[RatioPair, RatioFrame], None]
# Called with every sample taken here, after it was queued for storage; must not block.
SampleListener = Callable[[RatioSample], None]


class RatioEngine:
    """Keeps every active pair's latest ratios and rolling indicators.

    ``on_tick`` is a quote-cache listener (the service registers it). Ticks only mark
    pairs dirty; one publisher task recomputes the dirty pairs at most every
    ``RATIO_PUBLISH_INTERVAL`` and pushes each result once to the hub, so the cost does not
    grow with ticks times clients. A sampler task stores a sample of every pair each
    ``RATIO_SAMPLE_INTERVAL`` while the feed is live (``live_since``); the rolling windows
    are warm-started from stored history.
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
        *,
        live_since: Callable[[], float | None],
    ) -> None:
        self.settings = settings
        self.feed_down = feed_down
        self.live_since = live_since
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
        self.sample_rounds = 0  # sampler wake-ups, with or without samples
        self.sampling_paused = False
        self.publishes = 0
        # Wall time of the last round taken here, or of the last sample applied from the
        # cluster leader: the grid a new term keeps sampling on.
        self.last_sample_at: float | None = None
        self._listeners: list[RatioListener] = []
        self._sample_listeners: list[SampleListener] = []
        # False on a cluster follower: the leader samples, its samples arrive by apply_sample.
        self.sampling = True
        self._realign = asyncio.Event()  # resume_sampling(): move to the cluster's cadence

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        if self._tasks:
            return
        try:
            await self.load_pairs()
        except StorageError as exc:  # unreachable at start-up: load_pairs() once it answers
            log.warning(
                "ratio pairs not loaded yet (%s); loading them when the database answers", exc
            )
        self._tasks = [
            asyncio.create_task(self._publish_loop(), name="ratio-publisher"),
            asyncio.create_task(self._sample_loop(), name="ratio-sampler"),
        ]

    async def load_pairs(self) -> None:
        """Seed the default pairs into an empty database, then read the active ones."""
        seeded = await self.repository.seed_pairs(DEFAULT_PAIRS)
        if seeded:
            log.info("seeded %d default ratio pairs", seeded)
        await self.reload_pairs()

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(*tasks, timeout=self.settings.shutdown_timeout)

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

    def add_sample_listener(self, listener: SampleListener) -> None:
        """Also hand every sample taken here to ``listener`` (the cluster bus)."""
        if listener not in self._sample_listeners:
            self._sample_listeners.append(listener)

    def apply_sample(self, sample: RatioSample) -> bool:
        """A sample the cluster leader took: advance the pair's window as if taken here.

        False (and nothing changes) for an unknown pair or a sample not newer than the
        last one, so a snapshot replayed after a resync never counts a sample twice.
        """
        window = self._windows.get(sample.pair_id)
        last = self.last_samples.get(sample.pair_id)
        if window is None or (last is not None and sample.asof <= last.asof):
            return False
        window.push(sample.values)
        self.last_samples[sample.pair_id] = sample
        self.last_sample_at = sample.asof
        self._dirty.add(sample.pair_id)
        self._dirty_event.set()
        return True

    # -- live ratios ---------------------------------------------------------------

    def on_tick(self, quote: Quote) -> None:
        pair_ids = self._by_symbol.get(quote.symbol)
        if pair_ids:
            self._dirty.update(pair_ids)
            self._dirty_event.set()

    def compute(self, pair: RatioPair, now: float) -> RatioValues:
        return compute_ratios(
            pair,
            self.cache.get(pair.base),
            self.cache.get(pair.quote),
            now,
            self.settings.quote_stale_after,
            market_open=self.calendar.is_open(now),
            feed_down=self.feed_down(),
        )

    def frame(self, pair: RatioPair, now: float, values: RatioValues) -> RatioFrame:
        """The pair's ratio frame at ``now``: values plus indicators peeked from its window."""
        return frames.ratio(pair, now, values, self._windows[pair.id].peek(values))

    def _refresh(self, pair_ids: set[int]) -> None:
        now = time.time()
        for pair_id in pair_ids:
            pair = self.pairs.get(pair_id)
            window = self._windows.get(pair_id)
            if pair is None or window is None:
                continue
            values = self.compute(pair, now)
            frame = frames.ratio(pair, now, values, window.peek(values))
            self.hub.publish_ratio(frame)
            self.publishes += 1
            for listener in self._listeners:
                listener(pair, frame)

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
        """Compute one sample per active pair with a value (pure apart from the windows).

        Only live quotes are sampled: nothing at all unless the feed is connected (not while
        stopped, connecting, reconnecting or failed), and never a quote received before the
        current connection began, however recent.
        """
        live_since = self.live_since()
        self._note_pause(live_since is None)
        if live_since is None:
            return []
        market_open = self.calendar.is_open(now)
        samples = []
        for pair in self.pairs.values():
            base = _since(self.cache.get(pair.base), live_since)
            quote = _since(self.cache.get(pair.quote), live_since)
            values = compute_ratios(
                pair, base, quote, now, self.settings.quote_stale_after, market_open=market_open
            )
            if all(v is None for v in asdict(values).values()):
                continue  # nothing observed: a stored row of nulls would only mislead
            try:
                indicators = self._windows[pair.id].push(values)
            except ArithmeticError:  # one pair's numbers must not cost the others a sample
                log.exception("ratio pair %s: indicators failed; no sample this round", pair.name)
                continue
            sample = RatioSample(pair.id, now, values, indicators)
            self.last_samples[pair.id] = sample
            samples.append(sample)
        return samples

    def resume_sampling(self) -> None:
        """Sample here from now on, keeping the cadence of the samples applied so far.

        Called when a cluster term begins: the next rounds fall on the previous leader's
        grid (its last sample + k x interval), and a round the takeover left overdue is
        taken as soon as every pair's legs are live here, so a takeover costs at most one
        sample per pair instead of up to a whole extra interval.
        """
        self.sampling = True
        if self.last_sample_at is not None:
            self._realign.set()

    async def _sample_loop(self) -> None:
        interval = self.settings.ratio_sample_interval
        loop = asyncio.get_running_loop()
        next_at = loop.time() + interval
        while True:
            if await self._sleep_or_realign(next_at):
                until, overdue = self._next_on_grid(interval)
                next_at = loop.time() + until
                if overdue and until >= interval / 2:  # else the grid's round comes soon
                    await self._catch_up(next_at - interval / 2)
                continue
            next_at += interval
            if next_at < loop.time():  # fell behind (suspended): skip, don't burst
                next_at = loop.time() + interval
            self._round()

    async def _sleep_or_realign(self, until: float) -> bool:
        """Sleep until ``until`` (loop time); True if woken early by ``resume_sampling``."""
        realign = self._realign
        try:
            async with asyncio.timeout_at(until):
                await realign.wait()
        except TimeoutError:
            return False
        realign.clear()
        return True

    def _next_on_grid(self, interval: float) -> tuple[float, bool]:
        """(seconds to the next point of the last sample's grid, whether one was missed)."""
        last = self.last_sample_at
        now = time.time()
        if last is None:
            return interval, False
        elapsed = max(0.0, now - last)
        return last + (math.floor(elapsed / interval) + 1) * interval - now, elapsed >= interval

    async def _catch_up(self, deadline: float) -> None:
        """Take the overdue round once every pair's legs are live, if before ``deadline``."""
        loop = asyncio.get_running_loop()
        while self.sampling and loop.time() < deadline:
            if self._every_pair_live():
                log.info("ratio sampling: taking the round the takeover left overdue")
                self._round()
                return
            await asyncio.sleep(CATCH_UP_POLL)

    def _every_pair_live(self) -> bool:
        live_since = self.live_since()
        if live_since is None:
            return False
        return all(
            _since(self.cache.get(symbol), live_since) is not None
            for pair in self.pairs.values()
            for symbol in (pair.base, pair.quote)
        )

    def _round(self) -> None:
        """One sampling round: store and announce a sample of every pair with a value."""
        self.sample_rounds += 1
        if not self.sampling:
            return  # a cluster follower: last_sample_at follows the leader's samples
        now = time.time()
        self.last_sample_at = now
        try:
            samples = self.take_samples(now)
            for sample in samples:  # never waits: a database outage must not stall sampling
                self.writer.offer_sample(sample)
                for listener in self._sample_listeners:
                    listener(sample)
            self.samples_taken += len(samples)
        except Exception:
            log.exception("ratio sampling failed; retrying next interval")

    def _note_pause(self, paused: bool) -> None:
        if paused != self.sampling_paused:
            self.sampling_paused = paused
            log.info("ratio sampling %s", "paused: the feed is not live" if paused else "resumed")

    def current(self, pair_id: int) -> RatioFrame | None:
        """The ratio frame of one active pair, computed now; None for an unknown pair."""
        pair = self.pairs.get(pair_id)
        if pair is None or pair_id not in self._windows:
            return None
        return self.frame(pair, time.time(), self.compute(pair, time.time()))

    def snapshot(self) -> list[RatioFrame]:
        """The ratio message of every active pair, computed now from the cached quotes.

        Never the last pushed message: pushes happen only on ticks, so once the feed goes
        quiet that message would keep numbers whose quotes have since gone stale.
        """
        now = time.time()
        return [self.frame(pair, now, self.compute(pair, now)) for pair in self.pairs.values()]

    def resolve(self, specs: Sequence[object]) -> tuple[list[int], list[str]]:
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


def _since(quote: Quote | None, live_since: float) -> Quote | None:
    """``quote`` if it arrived during the current connection, else None."""
    return quote if quote is not None and quote.recv_ts >= live_since else None
