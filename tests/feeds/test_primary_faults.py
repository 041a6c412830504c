"""The Primary adapter against the fake Primary server, one fault at a time.

Every test runs the real adapter over real sockets, checks how fast it recovered, that it
resubscribed every product (from what the fake recorded), that it reported its state, that
a concurrent ticker was never late by more than 200 ms, and that no task outlived it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from primary_kit import (
    INSTRUMENTS,
    Collector,
    LoopProbe,
    no_tasks_leak,
    primary_settings,
    running,
)

from cotiza.errors import FatalFeedError
from cotiza.fake_primary import MALFORMED_FRAMES, FakePrimary
from cotiza.feeds.base import FeedState
from cotiza.feeds.primary import PrimaryFeed

pytestmark = pytest.mark.live

MAX_LATE = 0.2


@dataclass
class Run:
    fake: FakePrimary
    feed: PrimaryFeed
    quotes: Collector
    probe: LoopProbe

    def states(self) -> list[FeedState]:
        return [state for _, state in self.feed.transitions]

    async def reconnected(self, connection: int, timeout: float = 5.0) -> float:
        """Seconds from the last fault to the first quote on connection ``connection``."""
        await self.fake.wait_until(lambda: connection in self.fake.opened, timeout)
        fresh = await self.quotes.first_since(self.fake.opened[connection], timeout)
        return fresh - self.fake.fault_log[-1][0]

    def session_sent(self) -> int:
        return max((s.sent for s in self.fake.sessions.values()), default=0)


@asynccontextmanager
async def adapter(
    fake: FakePrimary, instruments: Sequence[str] = INSTRUMENTS, **overrides: object
) -> AsyncIterator[Run]:
    """A connected adapter with a loop probe; on exit: stopped, probe checked, no leaks."""
    before = set(asyncio.all_tasks())
    feed = PrimaryFeed(primary_settings(fake, **overrides))
    quotes = Collector()
    probe = LoopProbe()
    async with running(feed, instruments, quotes):
        await feed.wait_for_state(FeedState.CONNECTED)
        known = [s for s in instruments if s in fake.instruments]
        await quotes.wait_until(lambda: {q.symbol for q in quotes.quotes} >= set(known))
        yield Run(fake, feed, quotes, probe)
    assert feed.state is FeedState.STOPPED
    await probe.stop()
    assert probe.worst < MAX_LATE, f"event loop blocked for {probe.worst:.3f} s"
    assert probe.beats > 0
    await no_tasks_leak(before | fake.tasks | {probe._task})


async def test_clean_close_reconnects_at_once_and_resubscribes_everything(
    fake: FakePrimary,
) -> None:
    """A close frame with code 1001 after N frames: back within a second, all products re-sent."""
    async with adapter(fake) as run:
        fake.faults.close_code = 1001
        fake.faults.close_after = run.session_sent() + 5
        assert await run.reconnected(2) < 1.0
        assert fake.subscriptions(2) == INSTRUMENTS
        assert run.feed.stats.reconnects == 1
        assert run.feed.last_loss is not None and "1001" in run.feed.last_loss
        assert run.states()[-2:] == [FeedState.RECONNECTING, FeedState.CONNECTED]
        assert run.feed.disconnected_at is not None


async def test_abrupt_drop_reconnects_and_resubscribes(fake: FakePrimary) -> None:
    """A TCP drop without a close frame is noticed at once and repaired within a second."""
    async with adapter(fake) as run:
        fake.faults.drop_after = run.session_sent() + 3
        assert await run.reconnected(2) < 1.0
        assert fake.subscriptions(2) == INSTRUMENTS
        assert run.feed.last_loss == "connection dropped without a close frame"
        assert run.feed.state is FeedState.CONNECTED


async def test_freeze_is_detected_by_the_pong_timeout(fake: FakePrimary) -> None:
    """A frozen server (no frames, no pongs, socket open) is left after the pong timeout."""
    async with adapter(fake) as run:
        fake.faults.freeze_after = run.session_sent() + 1
        # ping interval 0.2 + pong timeout 0.3 + close timeout 0.3 + backoff, with margin
        assert await run.reconnected(2) < 2.0
        assert run.feed.last_loss == "pong timeout"
        assert run.feed.stats.extra["pong_timeouts"] == 1
        assert fake.subscriptions(2) == INSTRUMENTS


async def test_data_silence_during_market_hours_forces_a_reconnect(fake: FakePrimary) -> None:
    """No market data for the silence timeout while the market is open: reconnect."""
    async with adapter(fake, primary_silence_timeout=0.4) as run:
        fake.faults.pause = True
        await run.feed.wait_for_state(FeedState.RECONNECTING, timeout=3)
        fake.faults.pause = False
        await fake.wait_until(lambda: fake.subscriptions(2) == INSTRUMENTS)
        assert run.feed.stats.extra["silences"] >= 1
        assert run.feed.last_loss is not None and "no market data" in run.feed.last_loss


async def test_data_silence_outside_market_hours_is_normal(fake: FakePrimary) -> None:
    """With the market closed (today a holiday), a silent feed keeps its connection."""
    today = dt.datetime.now(dt.UTC).astimezone().date()
    holidays = [today - dt.timedelta(days=1), today, today + dt.timedelta(days=1)]
    async with adapter(fake, primary_silence_timeout=0.2, market_holidays=holidays) as run:
        fake.faults.pause = True
        with pytest.raises(TimeoutError):
            await run.feed.wait_for_state(FeedState.RECONNECTING, timeout=1.0)
        assert fake.connection_ids == [1]
        assert run.feed.stats.extra["silences"] == 0


async def test_token_expired_between_reconnects_is_renewed_after_one_401(
    fake: FakePrimary,
) -> None:
    """Tokens expired server-side: the handshake gets 401, the adapter re-authenticates once."""
    async with adapter(fake) as run:
        fake.expire_tokens()
        fake.faults.drop_after = run.session_sent() + 1
        assert await run.reconnected(2) < 1.5
        statuses = [status for _, status in fake.handshakes]
        assert statuses == [101, 401, 101]
        assert [ok for _, ok in fake.auth_attempts] == [True, True]
        assert fake.subscriptions(2) == INSTRUMENTS


async def test_token_near_expiry_is_renewed_before_reconnecting(fake: FakePrimary) -> None:
    """A token past its lifetime minus the margin is renewed without waiting for a 401."""
    async with adapter(fake, primary_token_lifetime=0.3, primary_token_margin=0.2) as run:
        await run.quotes.wait_until(lambda: len(run.quotes.items) > 20)
        fake.faults.drop_after = run.session_sent() + 1
        await run.reconnected(2)
        assert [status for _, status in fake.handshakes] == [101, 101]
        assert len(fake.auth_attempts) == 2


async def test_401_on_handshake_reauthenticates_and_connects(fake: FakePrimary) -> None:
    """One handshake refused with 401 costs one re-authentication, not a failure."""
    fake.faults.reject_handshakes = 1
    async with adapter(fake) as run:
        assert [status for _, status in fake.handshakes] == [401, 101]
        assert len(fake.auth_attempts) == 2
        assert fake.subscriptions(1) == INSTRUMENTS
        assert run.feed.stats.reconnects == 1


async def test_handshake_refused_with_fresh_tokens_stops_for_good(fake: FakePrimary) -> None:
    """A server that keeps refusing fresh tokens ends in FatalFeedError after three tries."""
    fake.faults.reject_handshakes = 100
    feed = PrimaryFeed(primary_settings(fake))
    with pytest.raises(FatalFeedError, match="refusing fresh tokens"):
        await asyncio.wait_for(feed.run(INSTRUMENTS, Collector()), 5)
    assert feed.state is FeedState.FAILED
    assert len(fake.handshakes) == 3


async def test_bad_credentials_at_start_fail_fast_without_hammering(fake: FakePrimary) -> None:
    """Wrong credentials stop the feed with a clear message after a single attempt."""
    before = set(asyncio.all_tasks())
    feed = PrimaryFeed(primary_settings(fake, primary_password="wrong-secret"))
    with pytest.raises(FatalFeedError) as caught:
        await asyncio.wait_for(feed.run(INSTRUMENTS, Collector()), 5)
    message = str(caught.value)
    assert "PRIMARY_USER" in message and "PRIMARY_PASSWORD" in message
    assert "wrong-secret" not in message and "wrong-secret" not in repr(feed.stats)
    assert feed.state is FeedState.FAILED
    assert fake.auth_attempts == [("user", False)]
    assert fake.handshakes == []
    await no_tasks_leak(before | fake.tasks)


async def test_outage_backs_off_exponentially_and_recovers(fake: FakePrimary) -> None:
    """During an outage (503 on handshake) retries space out; quotes resume afterwards."""
    async with adapter(fake, primary_backoff_base=0.05, primary_backoff_cap=5.0) as run:
        fake.faults.unavailable = True
        fake.drop_all()
        await fake.wait_until(lambda: len(fake.handshakes) >= 6, timeout=5)
        assert run.feed.state is FeedState.RECONNECTING
        times = [t for t, _ in fake.handshakes[1:6]]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps[-1] > gaps[0] * 2, gaps
        fake.faults.unavailable = False
        await fake.wait_until(lambda: 2 in fake.opened, timeout=5)
        await run.quotes.first_since(fake.opened[2])
        assert fake.subscriptions(2) == INSTRUMENTS


async def test_backoff_resets_after_a_stable_connection(fake: FakePrimary) -> None:
    """After a connection that stayed up for the stable period, the next retry is quick again."""
    async with adapter(fake, primary_backoff_cap=5.0, primary_stable_after=0.3) as run:
        fake.faults.unavailable = True
        fake.drop_all()
        await fake.wait_until(lambda: len(fake.handshakes) >= 6, timeout=5)
        fake.faults.unavailable = False
        await fake.wait_until(lambda: 2 in fake.opened, timeout=5)
        stable_at = fake.opened[2] + 0.35
        await run.quotes.first_since(stable_at, timeout=3)
        count = len(fake.handshakes)
        fake.drop_all()
        dropped = asyncio.get_running_loop().time()
        await fake.wait_until(lambda: len(fake.handshakes) > count)
        # Without the reset this delay would be at least 0.8 s (the seventh attempt's band).
        assert fake.handshakes[count][0] - dropped < 0.4


async def test_unknown_product_gets_an_error_frame_and_the_connection_stays(
    fake: FakePrimary,
) -> None:
    """Subscribing to a product Primary does not list yields an error frame, nothing else."""
    async with adapter(fake, [*INSTRUMENTS, "MERV - XMEV - NOPE - 24hs"]) as run:
        await run.quotes.wait_until(lambda: run.feed.stats.extra["server_errors"] >= 1)
        assert run.feed.stats.last_error == "Product MERV - XMEV - NOPE - 24hs:ROFX doesn't exist"
        count = len(run.quotes.items)
        await run.quotes.wait_count(count + 5)
        assert fake.connection_ids == [1]
        assert run.feed.state is FeedState.CONNECTED


async def test_malformed_and_unknown_frames_are_counted_and_skipped(fake: FakePrimary) -> None:
    """Garbage frames and unknown types never drop the connection or stop the quotes."""
    async with adapter(fake) as run:
        fake.inject_malformed()
        fake.inject_unknown_types(3)
        extra = run.feed.stats.extra
        await run.quotes.wait_until(lambda: extra["malformed"] == len(MALFORMED_FRAMES))
        await run.quotes.wait_until(lambda: extra["ignored"] == 3)
        count = len(run.quotes.items)
        await run.quotes.wait_count(count + 5)
        assert fake.connection_ids == [1]


async def test_empty_books_give_quotes_without_prices(fake: FakePrimary) -> None:
    """Md frames with every entry empty or null become quotes with None fields."""
    async with adapter(fake) as run:
        fake.faults.empty_books = True
        moment = asyncio.get_running_loop().time()
        await run.quotes.wait_until(lambda: len(run.quotes.since(moment)) >= 5)
        fresh = [q for _, q in run.quotes.since(moment)][-3:]
        assert all(q.bid is None and q.offer is None and q.last is None for q in fresh)
        assert run.feed.stats.extra["malformed"] == 0
        assert fake.connection_ids == [1]


async def test_burst_of_ten_thousand_frames_never_blocks_the_loop(fake: FakePrimary) -> None:
    """Ten thousand frames at once are all applied while the loop stays responsive."""
    # Pongs queue behind the burst on the wire; the test's 0.3 s pong timeout is too tight.
    async with adapter(fake, primary_pong_timeout=5.0) as run:
        start = run.feed.stats.quotes
        await fake.burst(10_000)
        await run.quotes.wait_until(lambda: run.feed.stats.quotes >= start + 10_000, timeout=20)
        assert fake.connection_ids == [1]
        assert run.probe.beats > 0


async def test_added_symbols_are_subscribed_now_and_after_every_reconnect(
    fake: FakePrimary,
) -> None:
    """A symbol added while connected is sent at once and kept in the resubscription."""
    extra = "MERV - XMEV - GD30 - 24hs"
    async with adapter(fake) as run:
        await run.feed.subscribe([extra, INSTRUMENTS[0]])
        await fake.wait_until(lambda: extra in fake.subscriptions(1))
        assert fake.subscriptions(1) == [*INSTRUMENTS, extra]
        fake.faults.drop_after = run.session_sent() + 1
        await run.reconnected(2)
        assert fake.subscriptions(2) == [*INSTRUMENTS, extra]
        assert run.feed.desired == [*INSTRUMENTS, extra]


async def test_subscriptions_are_sent_in_batches(fake: FakePrimary) -> None:
    """With a batch size of 3, eight products go out as three smd messages."""
    symbols = list(fake.instruments)[:8]
    async with adapter(fake, symbols, primary_batch_size=3):
        sizes = [len(f.message["products"]) for f in fake.client_frames if f.connection == 1]
        assert sizes == [3, 3, 2]


async def test_order_reports_are_subscribed_when_enabled(fake: FakePrimary) -> None:
    """With order reports on and an account set, each connection sends an os message."""
    async with adapter(fake, primary_order_reports=True, primary_account="ACC1") as run:
        fake.faults.drop_after = run.session_sent() + 1
        await run.reconnected(2)
        os_messages = [
            f.connection
            for f in fake.client_frames
            if isinstance(f.message, dict) and f.message.get("type") == "os"
        ]
        assert os_messages == [1, 2]
