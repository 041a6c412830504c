"""Tests of the seeded market simulator and its run loop."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from cotiza.errors import InvalidRequestError
from cotiza.feeds.base import FeedState
from cotiza.feeds.sim import SimFeed
from cotiza.models import Quote
from cotiza.settings import Settings

AL30 = "MERV - XMEV - AL30 - 24hs"
AL30D = "MERV - XMEV - AL30D - 24hs"
AL30C = "MERV - XMEV - AL30C - 24hs"
GD30 = "MERV - XMEV - GD30 - 24hs"
GD30C = "MERV - XMEV - GD30C - 24hs"
GGAL = "MERV - XMEV - GGAL - 24hs"


def make_feed(seed: int = 7, rate: float = 20.0, instruments: list[str] | None = None) -> SimFeed:
    return SimFeed(
        Settings(sim_seed=seed, sim_ticks_per_second=rate, feed_instruments=instruments or [])
    )


def fingerprint(quote: Quote) -> tuple[object, ...]:
    return (
        quote.symbol,
        quote.bid,
        quote.offer,
        quote.last,
        quote.bid_size,
        quote.offer_size,
        quote.last_size,
    )


class Collector:
    """A sink that records quotes and sets an event once it has seen ``target`` of them."""

    def __init__(self, target: int, clock: Callable[[], float] | None = None) -> None:
        self.quotes: list[Quote] = []
        self.times: list[float] = []
        self.target = target
        self.reached = asyncio.Event()
        self.clock = clock or asyncio.get_running_loop().time

    def __call__(self, quote: Quote) -> None:
        self.quotes.append(quote)
        self.times.append(self.clock())
        if len(self.quotes) >= self.target:
            self.reached.set()


class LoopProbe:
    """A task that measures how late its ``asyncio.sleep(0.01)`` wake-ups are."""

    def __init__(self) -> None:
        self.worst_lateness = 0.0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            self.worst_lateness = max(self.worst_lateness, loop.time() - before - 0.01)

    async def stop(self) -> None:
        await stop(self._task)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=1.0)


def test_catalogue_uses_primary_names() -> None:
    """The catalogue holds every required bond, stock and future under Primary's names."""
    catalogue = make_feed().catalogue()
    species = ["AL30", "AL30D", "AL30C", "GD30", "GD30D", "GD30C", "GGAL", "YPFD", "PAMP"]
    expected = [
        f"MERV - XMEV - {name} - {settlement}" for name in species for settlement in ("24hs", "CI")
    ]
    expected += ["DLR/DIC26", "DLR/ENE27", "GGAL/FEB27"]
    assert sorted(catalogue) == sorted(expected)
    assert len(set(catalogue)) == len(catalogue)
    assert catalogue == make_feed(seed=99).catalogue()


def test_same_seed_reproduces_the_sequence() -> None:
    """Two feeds with the same seed and instruments deliver identical quotes."""
    sequences = []
    for _ in range(2):
        feed = make_feed(seed=11)
        market = feed.select()
        quotes = market.snapshot() + list(feed.generate(5_000))
        sequences.append([fingerprint(quote) for quote in quotes])
    assert sequences[0] == sequences[1]


def test_different_seeds_differ() -> None:
    """Different seeds give different sequences."""
    first = [fingerprint(q) for q in make_feed(seed=1).generate(500)]
    second = [fingerprint(q) for q in make_feed(seed=2).generate(500)]
    assert first != second


def test_quote_invariants() -> None:
    """Every generated quote has positive prices and sizes and an offer above the bid."""
    feed = make_feed(seed=3)
    symbols = set(feed.catalogue())
    for quote in itertools.chain(feed.select().snapshot(), feed.generate(20_000)):
        assert quote.symbol in symbols
        assert quote.bid is not None and quote.offer is not None
        assert quote.offer > quote.bid > 0
        assert quote.bid_size and quote.bid_size > 0 and quote.bid_size == int(quote.bid_size)
        assert quote.offer_size and quote.offer_size > 0
        assert quote.last and quote.last > 0 and quote.last_size and quote.last_size > 0
        assert quote.op and quote.op > 0 and quote.cl and quote.cl > 0
        assert (quote.offer - quote.bid) / quote.bid < 0.01
        # The last trade sits inside or near the current spread.
        assert quote.bid * 0.98 < quote.last < quote.offer * 1.02


def test_ratios_track_their_factors() -> None:
    """MEP, CCL and canje implied by the quotes stay close to the simulated factors."""
    feed = make_feed(seed=5)
    market = feed.select()
    latest = {quote.symbol: quote for quote in market.snapshot()}

    def mid(symbol: str) -> float:
        value = latest[symbol].mid
        assert value is not None
        return value

    checked = 0
    for i, quote in enumerate(feed.generate(200_000)):
        latest[quote.symbol] = quote
        if i % 100:
            continue
        levels = market.levels()
        assert abs(mid(AL30) / mid(AL30D) / levels.mep - 1) < 0.02
        assert abs(mid(GD30) / mid(GD30C) / levels.ccl - 1) < 0.02
        assert 0.0 < mid(AL30D) / mid(AL30C) - 1 < 0.05
        assert 0.0 < levels.canje < 0.05
        assert 1_200 < levels.official < 1_650
        checked += 1
    assert checked == 2_000


def test_ci_trades_slightly_below_24hs() -> None:
    """The CI price carries a small financing discount against the 24hs price."""
    feed = make_feed(seed=8, instruments=[AL30, "MERV - XMEV - AL30 - CI"])
    market = feed.select()
    spot, ci = (quote.mid for quote in market.snapshot())
    assert spot is not None and ci is not None
    assert 0.0 < 1 - ci / spot < 0.005


def test_unknown_symbols_are_rejected() -> None:
    """Selecting a symbol outside the catalogue raises InvalidRequestError naming it."""
    feed = make_feed()
    with pytest.raises(InvalidRequestError, match="NOPE"):
        feed.select([AL30, "MERV - XMEV - NOPE - 24hs"])


async def test_run_rejects_unknown_symbols_before_delivering() -> None:
    """run() raises InvalidRequestError and delivers nothing for an unknown symbol."""
    feed = make_feed()
    sink = Collector(target=1)
    with pytest.raises(InvalidRequestError, match="DLR/XXX99"):
        await feed.run(["DLR/XXX99"], sink)
    assert sink.quotes == []
    assert feed.state is FeedState.IDLE


async def test_run_sends_snapshot_then_ticks_at_the_configured_rate() -> None:
    """run() delivers one quote per instrument at once, then about the configured rate."""
    feed = make_feed(seed=4, rate=200.0)
    count = len(feed.catalogue())
    sink = Collector(target=count + 100)
    task = asyncio.create_task(feed.run([], sink))
    await asyncio.wait_for(sink.reached.wait(), timeout=5.0)
    assert feed.state is FeedState.CONNECTED
    assert [quote.symbol for quote in sink.quotes[:count]] == feed.catalogue()
    await stop(task)
    ticks = len(sink.quotes) - count
    elapsed = sink.times[-1] - sink.times[count - 1]
    assert 100 <= ticks < 140
    assert 100 / 200 * 0.6 < elapsed < 100 / 200 * 2
    assert feed.stats.quotes == len(sink.quotes)
    assert feed.stats.frames >= 2


async def test_run_honours_feed_instruments() -> None:
    """With no explicit instruments run() uses FEED_INSTRUMENTS, and explicit ones win."""
    selected = [GGAL, "DLR/DIC26"]
    feed = make_feed(rate=500.0, instruments=selected)
    sink = Collector(target=50)
    task = asyncio.create_task(feed.run([], sink))
    await asyncio.wait_for(sink.reached.wait(), timeout=5.0)
    await stop(task)
    assert [quote.symbol for quote in sink.quotes[:2]] == selected
    assert {quote.symbol for quote in sink.quotes} == set(selected)

    sink = Collector(target=20)
    task = asyncio.create_task(feed.run([AL30D], sink))
    await asyncio.wait_for(sink.reached.wait(), timeout=5.0)
    await stop(task)
    assert {quote.symbol for quote in sink.quotes} == {AL30D}


async def test_run_matches_the_synchronous_sequence() -> None:
    """The quotes run() delivers are exactly the snapshot followed by generate()."""
    instruments = [AL30, AL30D, GD30, GD30C]
    feed = make_feed(seed=21, rate=5_000.0)
    sink = Collector(target=2_000)
    task = asyncio.create_task(feed.run(instruments, sink))
    await asyncio.wait_for(sink.reached.wait(), timeout=5.0)
    await stop(task)
    reference = make_feed(seed=21)
    market = reference.select(instruments)
    expected = market.snapshot() + list(market.generate(len(sink.quotes) - len(instruments)))
    assert [fingerprint(q) for q in sink.quotes] == [fingerprint(q) for q in expected]


async def test_cancel_stops_promptly() -> None:
    """Cancelling run() ends it at once with state STOPPED."""
    feed = make_feed(rate=1.0)
    sink = Collector(target=len(feed.catalogue()))
    task = asyncio.create_task(feed.run([], sink))
    await asyncio.wait_for(sink.reached.wait(), timeout=5.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await stop(task)
    assert loop.time() - started < 0.5
    assert feed.state is FeedState.STOPPED


async def test_high_rate_does_not_starve_the_loop() -> None:
    """At 20,000 ticks/s the feed keeps up while other tasks still wake on time."""
    feed = make_feed(seed=6, rate=20_000.0)
    count = len(feed.catalogue())
    received = 0
    reached = asyncio.Event()
    loop = asyncio.get_running_loop()
    marks: list[float] = []

    def sink(quote: Quote) -> None:
        nonlocal received
        received += 1
        if received == count or received == count + 20_000:
            marks.append(loop.time())
            if len(marks) == 2:
                reached.set()

    probe = LoopProbe()
    task = asyncio.create_task(feed.run([], sink))
    await asyncio.wait_for(reached.wait(), timeout=10.0)
    await stop(task)
    await probe.stop()
    achieved = 20_000 / (marks[1] - marks[0])
    assert achieved > 10_000
    assert probe.worst_lateness < 0.1


async def test_unreachable_rate_falls_behind_instead_of_blocking() -> None:
    """A rate beyond the CPU budget skips ticks and keeps other tasks on time."""
    feed = make_feed(seed=9, rate=1_000_000.0)
    sink = Collector(target=50_000, clock=lambda: 0.0)
    probe = LoopProbe()
    task = asyncio.create_task(feed.run([], sink))
    await asyncio.wait_for(sink.reached.wait(), timeout=10.0)
    await stop(task)
    await probe.stop()
    assert feed.stats.extra["skipped_ticks"] > 0
    assert probe.worst_lateness < 0.1
