"""RedisBus on the shared Redis: ordered delivery, snapshots, fencing, gaps, heartbeats."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
import redis
from cluster_kit import RecordingSink, started
from support.poll import eventually

from cotiza.cluster import BusMessage, BusState, Kind, RedisBus
from cotiza.cluster.health import bus_lag_histogram
from cotiza.settings import Settings

pytestmark = [pytest.mark.cluster]

Factory = Callable[..., Settings]


def tick(symbol: str, version: int) -> str:
    return f'{{"type":"tick","symbol":"{symbol}","bid":{version}.5,"v":{version}}}'


async def test_follower_applies_the_leaders_frames_in_order(bus_settings: Factory) -> None:
    """Every frame reaches the follower once, in order, as the exact same string."""
    local: list[BusMessage] = []
    sink_a, sink_b = RecordingSink(), RecordingSink()
    a = RedisBus(bus_settings(node_id="a"), sink_a, local_sink=local.append)
    b = RedisBus(bus_settings(node_id="b"), sink_b)
    async with started(a, b):
        a.lead(1)
        # A new epoch reaches followers as a resync (its first envelopes are in the snapshot
        # they read); from then on they apply the stream envelope by envelope.
        a.publish(Kind.TICK, "FIRST", tick("FIRST", 0))
        await eventually(lambda: b.subscriber.sequencer.synced, 5)
        assert sink_b.resyncs[-1].get(Kind.TICK, "FIRST") is not None
        frames = [tick(f"S{i:02d}", i) for i in range(50)]
        for i, frame in enumerate(frames):
            assert a.publish(Kind.TICK, f"S{i:02d}", frame)
        assert [m.frame for m in local][1:] == frames  # the leader's own hub got them at once
        await eventually(lambda: len(sink_b.applied) == 50, 5)
        assert [m.frame for m in sink_b.applied] == frames
        seqs = [m.seq for m in sink_b.applied]
        assert seqs == list(range(seqs[0], seqs[0] + 50))  # consecutive: nothing lost
        assert {m.epoch for m in sink_b.applied} == {1}
        assert sink_a.applied == []  # the leader does not apply its own stream again
        assert b.stats.gaps == 0 and b.stats.resyncs == 1 and b.stats.stale_dropped == 0
        assert b.lag_ms is not None and 0 <= b.lag_ms < 1000
        snapshot = await b.snapshot()
        assert snapshot.meta is not None and snapshot.meta.leader_node == "a"
        assert snapshot.meta.epoch == 1 and snapshot.meta.seq >= 51
        assert snapshot.get(Kind.TICK, "S07").frame == frames[7]  # type: ignore[union-attr]


async def test_late_joiner_starts_from_the_snapshot(bus_settings: Factory) -> None:
    """A node that subscribes later gets the latest value of every key, then the stream."""
    sink_b = RecordingSink()
    a = RedisBus(bus_settings(node_id="a"), RecordingSink())
    b = RedisBus(bus_settings(node_id="b"), sink_b)
    async with started(a):
        a.lead(7)
        for version in (1, 2):
            for i in range(20):
                a.publish(Kind.TICK, f"S{i}", tick(f"S{i}", version))
        a.publish(Kind.SAMPLE, "3", '{"type":"sample","pair_id":3}')
        a.publish(Kind.DASH, "dashboard", '{"type":"dashboard_data","count":0}')
        await eventually(lambda: a.stats.published >= 22, 5)
        async with started(b):
            first = sink_b.resyncs[0]
            assert first.meta is not None and first.meta.epoch == 7
            assert {key for kind, key in sink_b.latest if kind is Kind.TICK} == {
                f"S{i}" for i in range(20)
            }
            assert all(sink_b.latest[(Kind.TICK, f"S{i}")] == tick(f"S{i}", 2) for i in range(20))
            assert sink_b.latest[(Kind.SAMPLE, "3")] == '{"type":"sample","pair_id":3}'
            assert (Kind.DASH, "dashboard") in sink_b.latest
            a.publish(Kind.TICK, "S0", tick("S0", 3))
            await eventually(lambda: sink_b.frames(Kind.TICK, "S0") == [tick("S0", 3)], 5)
            assert b.stats.resyncs == 0 and b.stats.gaps == 0


async def test_a_leader_seeing_a_higher_epoch_on_the_bus_stops_publishing(
    bus_settings: Factory,
) -> None:
    """A leader whose own subscription shows a higher epoch is fenced at once."""
    fenced: list[int] = []
    sink_b = RecordingSink()
    old = RedisBus(bus_settings(node_id="old"), RecordingSink(), on_fenced=fenced.append)
    new = RedisBus(bus_settings(node_id="new"), RecordingSink())
    b = RedisBus(bus_settings(node_id="b"), sink_b)
    async with started(old, new, b):
        old.lead(1)
        old.publish(Kind.TICK, "A", tick("A", 1))
        await eventually(lambda: sink_b.latest.get((Kind.TICK, "A")) == tick("A", 1), 5)
        new.lead(2)
        new.publish(Kind.TICK, "A", tick("A", 2))
        await eventually(lambda: bool(fenced), 5)
        assert set(fenced) == {2} and not old.leading
        assert not old.publish(Kind.TICK, "A", tick("A", 99))  # nothing leaves any more
        await eventually(lambda: sink_b.latest.get((Kind.TICK, "A")) == tick("A", 2), 5)
        new.publish(Kind.TICK, "B", tick("B", 2))
        await eventually(lambda: (Kind.TICK, "B") in sink_b.latest, 5)
        seen = [m.frame for m in sink_b.applied]
        seen += [m.frame for snap in sink_b.resyncs for m in snap.messages()]
        assert tick("A", 99) not in seen and sink_b.latest[(Kind.TICK, "A")] == tick("A", 2)


async def test_lua_refusal_fences_a_publisher_that_never_saw_the_new_epoch(
    bus_settings: Factory,
) -> None:
    """The publish script alone refuses a lower epoch, even with no subscriber to notice."""
    fenced: list[int] = []
    old = RedisBus(bus_settings(node_id="old"), RecordingSink(), on_fenced=fenced.append)
    new = RedisBus(bus_settings(node_id="new"), RecordingSink())
    await new.start()
    try:
        new.lead(5)
        new.publish(Kind.TICK, "A", tick("A", 5))
        await eventually(lambda: new.stats.published >= 1, 5)
        await old.publisher.start()  # publisher only: its subscriber cannot see epoch 5
        old.lead(4)
        old.publish(Kind.TICK, "A", tick("A", 4))
        await eventually(lambda: bool(fenced), 5)
        assert fenced == [5] and old.stats.fenced_publishes >= 1 and not old.leading
        snapshot = await new.snapshot()
        assert snapshot.get(Kind.TICK, "A").frame == tick("A", 5)  # type: ignore[union-attr]
        assert snapshot.meta is not None and snapshot.meta.epoch == 5
    finally:
        await old.publisher.stop()
        await old.client.aclose()
        await new.stop()


async def test_gap_triggers_a_counted_resync_and_nothing_is_lost(bus_settings: Factory) -> None:
    """Envelopes lost between leader and follower show as a gap; a resync restores the state."""
    sink_b = RecordingSink()
    a = RedisBus(bus_settings(node_id="a"), RecordingSink())
    b = RedisBus(bus_settings(node_id="b"), sink_b)
    async with started(a, b):
        a.lead(1)
        a.publish(Kind.TICK, "X", tick("X", 1))
        await eventually(lambda: b.subscriber.sequencer.synced, 5)
        before = b.stats.resyncs  # the new epoch's own resync
        a.publisher.seq += 3  # three envelopes the follower never receives
        a.publish(Kind.TICK, "Y", tick("Y", 1))
        await eventually(lambda: b.stats.gaps == 1 and b.stats.resyncs == before + 1, 5)
        assert sink_b.latest[(Kind.TICK, "Y")] == tick("Y", 1)  # from the resync's snapshot
        a.publish(Kind.TICK, "Z", tick("Z", 1))
        await eventually(lambda: sink_b.frames(Kind.TICK, "Z") == [tick("Z", 1)], 5)
        assert b.stats.gaps == 1 and b.state is BusState.CONNECTED


async def test_heartbeats_keep_a_quiet_leaders_followers_connected(bus_settings: Factory) -> None:
    """With nothing to publish, heartbeats flow: no wedge, lag measured, seq advancing."""
    a = RedisBus(bus_settings(node_id="a"), RecordingSink())
    b = RedisBus(bus_settings(node_id="b"), RecordingSink())
    async with started(a, b):
        a.lead(1)
        stale_after = b.subscriber.stale_after
        await eventually(lambda: b.subscriber.sequencer.seq >= 4 * stale_after / 0.1, 10)
        assert b.state is BusState.CONNECTED
        assert b.stats.wedges == 0 and b.stats.reconnects == 0 and b.stats.applied == 0
        assert a.stats.heartbeats >= 4 and b.lag_ms is not None
        # Every heartbeat applied was timed into the bus lag histogram of /metrics.
        stats = b.stats
        assert stats.lag_count >= 4 and sum(stats.lag_buckets) == stats.lag_count
        samples = {(x.name, x.labels.get("le")): x.value for x in bus_lag_histogram(stats).samples}
        assert samples[("cotiza_cluster_bus_lag_seconds_bucket", "+Inf")] == stats.lag_count
        assert samples[("cotiza_cluster_bus_lag_seconds_count", None)] == stats.lag_count
        assert samples[("cotiza_cluster_bus_lag_seconds_sum", None)] == pytest.approx(
            stats.lag_sum_ms / 1000
        )
        within_1s = samples[("cotiza_cluster_bus_lag_seconds_bucket", "1")]
        assert within_1s == stats.lag_count  # loopback: every envelope well under a second


async def test_no_leader_is_not_a_wedge(bus_settings: Factory) -> None:
    """Silence without any leader publishing is not this node's fault: it stays connected."""
    b = RedisBus(bus_settings(node_id="b"), RecordingSink())
    async with started(b):
        started_at = time.monotonic()
        stale_after = b.subscriber.stale_after
        await eventually(lambda: time.monotonic() - started_at > 4 * stale_after, 10)
        assert b.state is BusState.CONNECTED and b.stats.wedges == 0 and b.stats.reconnects == 0


async def test_a_follower_whose_loop_was_late_is_not_wedged(bus_settings: Factory) -> None:
    """A follower's loop blocked past the probe (GC, a starved core) while the leader kept
    publishing: the messages wait in its socket, so it reads them instead of resubscribing."""
    timings = {"bus_heartbeat": 0.1, "bus_stale_after": 2.0}
    leading = threading.Event()
    stop = threading.Event()

    async def leader() -> None:  # another process, in effect: its own loop and connections
        a = RedisBus(bus_settings(node_id="a", **timings), RecordingSink())
        async with started(a):
            a.lead(1)
            version = 0
            while not stop.is_set():
                version += 1
                a.publish(Kind.TICK, "A", tick("A", version))
                leading.set()
                await asyncio.sleep(0.01)

    thread = threading.Thread(target=asyncio.run, args=(leader(),), name="leader-loop")
    thread.start()
    try:
        assert await asyncio.to_thread(leading.wait, 10)
        b = RedisBus(bus_settings(node_id="b", **timings), RecordingSink())
        async with started(b):
            await eventually(lambda: b.stats.applied > 10, 5)
            for _ in range(3):
                time.sleep(b.subscriber.probe_after * 3)  # noqa: ASYNC251 - the loop stalls
                applied = b.stats.applied
                await eventually(lambda: b.stats.applied > applied + 10, 5)  # noqa: B023
            assert b.state is BusState.CONNECTED
            assert (b.stats.wedges, b.stats.reconnects, b.stats.resyncs) == (0, 0, 0)
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 10)


async def test_the_outbox_coalesces_a_burst_to_the_latest_value(bus_settings: Factory) -> None:
    """A burst on one key: the first publication leaves at once, the rest wait for its reply
    and reach followers as the burst's latest value."""
    sink_b = RecordingSink()
    a = RedisBus(bus_settings(node_id="a"), RecordingSink())
    b = RedisBus(bus_settings(node_id="b"), sink_b)
    async with started(a, b):
        a.lead(1)
        a.publish(Kind.TICK, "WARM", tick("WARM", 0))
        await eventually(lambda: b.subscriber.sequencer.synced, 5)
        await eventually(lambda: a.publisher.idle, 5)  # not even a heartbeat in flight
        before = a.stats.outbox_coalesced
        for version in range(1000):  # no await in between: no reply can arrive
            a.publish(Kind.TICK, "HOT", tick("HOT", version))
        await eventually(lambda: sink_b.latest.get((Kind.TICK, "HOT")) == tick("HOT", 999), 5)
        assert a.stats.outbox_coalesced - before == 998
        assert sink_b.frames(Kind.TICK, "HOT") == [tick("HOT", 0), tick("HOT", 999)]


def wait_blocking(event: threading.Event, timeout: float) -> bool:
    """Wait for ``event`` without letting the event loop run."""
    return event.wait(timeout)


async def test_a_publication_leaves_before_the_leader_yields(bus_settings: Factory) -> None:
    """With nothing in flight, ``publish`` writes to Redis at once: another process's
    subscriber gets the envelope while the leader's loop has not run since publishing."""
    settings = bus_settings(node_id="a")
    assert settings.backplane is not None
    listening, got = threading.Event(), threading.Event()

    def listen() -> None:  # another process, in effect: a plain blocking subscriber
        client = redis.Redis.from_url(settings.backplane or "")
        with client, client.pubsub() as pubsub:
            pubsub.subscribe(f"{settings.backplane_prefix}:bus")
            listening.set()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not got.is_set():
                message = pubsub.get_message(timeout=0.2)
                if message and message["type"] == "message" and b"LEAVES" in message["data"]:
                    got.set()

    thread = threading.Thread(target=listen, name="plain-subscriber")
    thread.start()
    try:
        assert await asyncio.to_thread(listening.wait, 10)
        a = RedisBus(settings, RecordingSink())
        async with started(a):
            a.lead(1)
            await eventually(lambda: a.stats.published > 0 and a.publisher.idle, 5)
            a.publish(Kind.TICK, "LEAVES", tick("LEAVES", 1))
            assert wait_blocking(got, 5)  # the loop is blocked: nothing was sent later
            await eventually(lambda: a.publisher.idle, 5)
            assert a.stats.send_failures == 0
    finally:
        got.set()
        await asyncio.to_thread(thread.join, 25)


async def test_stop_is_idempotent_and_leaves_no_task(bus_settings: Factory) -> None:
    """start/stop twice each; afterwards the bus is stopped and its tasks are gone."""
    a = RedisBus(bus_settings(node_id="a"), RecordingSink())
    await a.start()
    await a.start()
    tasks = [a.publisher._task, a.subscriber._task]
    await a.stop()
    await a.stop()
    assert a.state is BusState.STOPPED
    assert all(task is not None and task.done() for task in tasks)


async def test_a_new_leader_republishes_the_state_it_holds(bus_settings: Factory) -> None:
    """lead() sends a keyframe from the callback: every key, under the new epoch."""
    from cotiza.cluster import Publication

    held = [Publication(Kind.TICK, f"K{i}", tick(f"K{i}", 1), asof=100.0 + i) for i in range(5)]
    sink_b = RecordingSink()
    a = RedisBus(bus_settings(node_id="a"), RecordingSink(), keyframe=lambda: held)
    b = RedisBus(bus_settings(node_id="b"), sink_b)
    async with started(a, b):
        a.lead(9)
        await eventually(lambda: len(sink_b.latest) == 5, 5)
        assert a.stats.keyframes == 1
        snapshot = await b.snapshot()
        entry = snapshot.get(Kind.TICK, "K3")
        assert entry is not None and entry.epoch == 9 and entry.asof == 103.0
