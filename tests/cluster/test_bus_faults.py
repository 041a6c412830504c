"""RedisBus under faults: a blackholed subscription (wedge), Redis killed and restarted."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from cluster_kit import RecordingSink, RedisServer, TcpProxy, started
from support.poll import eventually

from cotiza.cluster import BusState, Kind, RedisBus
from cotiza.settings import Settings

pytestmark = [pytest.mark.cluster]

Factory = Callable[..., Settings]
SHARED_PORT = 6379


@asynccontextmanager
async def proxy_to(port: int) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def tick(symbol: str, version: int) -> str:
    return f'{{"type":"tick","symbol":"{symbol}","v":{version}}}'


async def test_blackholed_subscription_is_detected_as_wedged_and_replaced(
    bus_settings: Factory,
) -> None:
    """Only the blackholed node turns wedged, two missed heartbeats after its last message
    (well inside BUS_STALE_AFTER), then resubscribes; the others never notice."""
    sink_b, sink_c = RecordingSink(), RecordingSink()
    timings = {"bus_heartbeat": 0.2, "bus_stale_after": 2.0}
    async with proxy_to(SHARED_PORT) as proxy:
        a = RedisBus(bus_settings(node_id="a", **timings), RecordingSink())
        b = RedisBus(bus_settings(node_id="b", backplane=proxy.url, **timings), sink_b)
        c = RedisBus(bus_settings(node_id="c", **timings), sink_c)
        async with started(a, b, c):
            a.lead(1)
            a.publish(Kind.TICK, "A", tick("A", 1))
            await eventually(lambda: b.subscriber.sequencer.synced, 5)
            probe_after = b.subscriber.probe_after
            assert probe_after == pytest.approx(0.4)  # two heartbeats
            assert proxy.blackhole_subscriptions() == 1
            cut = time.monotonic()
            await b.subscriber.wait_for(lambda s: s.state is BusState.WEDGED, 5)
            detected = time.monotonic() - cut
            # The probe runs two heartbeats after the last message, which came before the cut;
            # the margin is one meta read and a busy loop, far short of BUS_STALE_AFTER.
            assert detected <= probe_after + 0.5 < b.subscriber.stale_after
            assert b.stats.wedges == 1
            await b.subscriber.wait_for(lambda s: s.state is BusState.CONNECTED, 5)
            a.publish(Kind.TICK, "A", tick("A", 2))
            await eventually(lambda: sink_b.latest.get((Kind.TICK, "A")) == tick("A", 2), 5)
            assert c.state is BusState.CONNECTED  # the others never noticed
            assert (c.stats.wedges, c.stats.reconnects) == (0, 0)
            assert sink_c.latest[(Kind.TICK, "A")] == tick("A", 2)
            assert proxy.subscriptions >= 1


async def test_a_subscription_that_stays_blackholed_stays_wedged(bus_settings: Factory) -> None:
    """While every new subscription is blackholed too, the node reports wedged, not reconnecting."""
    async with proxy_to(SHARED_PORT) as proxy:
        a = RedisBus(bus_settings(node_id="a"), RecordingSink())
        b = RedisBus(bus_settings(node_id="b", backplane=proxy.url), RecordingSink())
        async with started(a, b):
            a.lead(1)
            a.publish(Kind.TICK, "A", tick("A", 1))
            await eventually(lambda: b.subscriber.sequencer.synced, 5)
            proxy.blackhole_subscriptions(persistent=True)
            await b.subscriber.wait_for(lambda s: s.state is BusState.WEDGED, 5)
            states: set[BusState] = set()

            def attempts_while_recording() -> bool:
                states.add(b.state)
                return b.stats.reconnects >= 3

            await eventually(attempts_while_recording, 20)
            assert states == {BusState.WEDGED} and b.stats.wedges == 1
            proxy.heal()
            await b.subscriber.wait_for(lambda s: s.state is BusState.CONNECTED, 10)


async def test_redis_restart_resyncs_followers_and_the_leader_republishes(
    bus_settings: Factory, redis_server: RedisServer
) -> None:
    """Redis killed and restarted empty: the follower reconnects and resyncs, the leader's
    keyframe rebuilds the snapshot, and the follower ends with the leader's latest state."""
    sink_b = RecordingSink()
    a = RedisBus(bus_settings(node_id="a", backplane=redis_server.url), RecordingSink())
    b = RedisBus(bus_settings(node_id="b", backplane=redis_server.url), sink_b)
    symbols = [f"S{i}" for i in range(10)]
    async with started(a, b):
        a.lead(3)
        for symbol in symbols:
            a.publish(Kind.TICK, symbol, tick(symbol, 1))
        await eventually(lambda: len(sink_b.latest) == 10, 5)
        redis_server.kill()
        await b.subscriber.wait_for(lambda s: s.state is BusState.RECONNECTING, 5)
        for symbol in symbols:  # the tick path never waits for Redis, up or down
            assert a.publish(Kind.TICK, symbol, tick(symbol, 2))
        await eventually(lambda: not a.publisher_connected, 5)
        redis_server.start()
        restarted = time.monotonic()
        wanted = {(Kind.TICK, s): tick(s, 2) for s in symbols}
        await eventually(lambda: all(sink_b.latest.get(k) == v for k, v in wanted.items()), 5)
        fresh_after = time.monotonic() - restarted
        assert fresh_after <= 2.0
        await b.subscriber.wait_for(lambda s: s.state is BusState.CONNECTED, 5)
        assert a.stats.keyframes >= 1 and b.stats.resyncs >= 1 and b.stats.reconnects >= 1
        snapshot = await b.snapshot()
        assert len(snapshot.entries[Kind.TICK]) == 10  # rebuilt by the keyframe
        assert snapshot.meta is not None and snapshot.meta.epoch == 3


async def test_followers_drop_a_stale_leader_that_publishes_after_redis_forgot(
    bus_settings: Factory, redis_server: RedisServer
) -> None:
    """Redis restarted empty cannot fence an old epoch; followers still drop it."""
    sink_b = RecordingSink()
    new = RedisBus(bus_settings(node_id="new", backplane=redis_server.url), RecordingSink())
    b = RedisBus(bus_settings(node_id="b", backplane=redis_server.url), sink_b)
    async with started(new, b):
        new.lead(5)
        new.publish(Kind.TICK, "A", tick("A", 5))
        await eventually(lambda: b.subscriber.sequencer.epoch == 5, 5)
        await new.stop()  # the current leader goes quiet ...
        redis_server.kill()  # ... and Redis loses every key, the highest epoch included
        redis_server.start()
        await b.subscriber.wait_for(lambda s: s.state is BusState.CONNECTED, 10)
        old = RedisBus(bus_settings(node_id="old", backplane=redis_server.url), RecordingSink())
        async with started(old):
            old.lead(4)
            old.publish(Kind.TICK, "A", tick("A", 4))
            await eventually(lambda: b.stats.stale_dropped >= 1, 5)
        assert sink_b.latest[(Kind.TICK, "A")] == tick("A", 5)
        assert tick("A", 4) not in [m.frame for m in sink_b.applied]


async def test_publishing_while_redis_is_down_is_bounded_and_counted(
    bus_settings: Factory, redis_server: RedisServer
) -> None:
    """With Redis gone the outbox keeps one entry per key up to its bound, dropping the rest."""
    a = RedisBus(
        bus_settings(node_id="a", backplane=redis_server.url, bus_outbox_size=16), RecordingSink()
    )
    async with started(a):
        a.lead(1)
        redis_server.kill()
        await eventually(lambda: not a.publisher_connected, 5)
        started_at = time.perf_counter()
        for round_ in range(100):
            for i in range(40):
                assert a.publish(Kind.TICK, f"S{i}", tick(f"S{i}", round_))
        elapsed = time.perf_counter() - started_at
        assert len(a.publisher.outbox) == 16
        assert a.stats.outbox_dropped == 4000 - 16 - a.stats.outbox_coalesced
        assert a.stats.outbox_coalesced == 16 * 99
        assert elapsed < 1.0  # 4000 publishes, no network wait in any of them
