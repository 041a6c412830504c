"""The pure parts of the bus: envelopes, the subscriber's ordering rules, the leader's outbox."""

from __future__ import annotations

import orjson
import pytest

from cotiza.cluster.bus import LocalBus
from cotiza.cluster.envelope import (
    BusMessage,
    EnvelopeError,
    Kind,
    Publication,
    Sequencer,
    SnapshotMeta,
    Verdict,
    decode,
    encode,
)
from cotiza.cluster.outbox import Outbox

TICK = '{"type":"tick","symbol":"AL30","bid":1.0}'


def test_envelope_round_trip_keeps_the_exact_client_frame() -> None:
    """The frame travels as the same string; the envelope carries e, s, t, k, key (and a)."""
    data = encode(3, 17, 1_700_000_000_123_456_789, Publication(Kind.TICK, "AL30", TICK, 12.5))
    body = orjson.loads(data)
    assert set(body) == {"e", "s", "t", "k", "key", "f", "a"}
    message = decode(data, received_ns=1_700_000_000_125_456_789)
    assert message.frame == TICK and message.frame is not None
    assert (message.epoch, message.seq, message.kind, message.key) == (3, 17, Kind.TICK, "AL30")
    assert message.asof == 12.5
    assert message.lag_ms == pytest.approx(2.0)
    plain = decode(encode(1, 1, 5, Publication(Kind.HEARTBEAT, "", "")))
    assert plain.asof is None and plain.lag_ms is None


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[1, 2]",
        b'{"e": 1, "s": 2, "t": 3, "k": "tick", "key": "A"}',
        b'{"e": "1", "s": 2, "t": 3, "k": "tick", "key": "A", "f": "x"}',
        b'{"e": 1, "s": 2, "t": 3, "k": "nope", "key": "A", "f": "x"}',
        b'{"e": 1, "s": 2, "t": 3, "k": "tick", "key": 5, "f": "x"}',
        b'{"e": true, "s": 2, "t": 3, "k": "tick", "key": "A", "f": "x"}',
    ],
)
def test_malformed_envelopes_are_refused(data: bytes) -> None:
    """Anything but a complete, well-typed envelope raises EnvelopeError."""
    with pytest.raises(EnvelopeError):
        decode(data)


def test_sequencer_applies_in_order_and_drops_duplicates_and_stale_epochs() -> None:
    """(e, s) rules: next applies, overlap is a duplicate, a lower epoch is stale."""
    seq = Sequencer()
    assert seq.classify(1, 1) is Verdict.UNSYNCED  # no snapshot read yet
    seq.baseline(SnapshotMeta(2, 10, 0, "a"))
    assert seq.classify(2, 9) is Verdict.DUPLICATE
    assert seq.classify(2, 10) is Verdict.DUPLICATE
    assert seq.classify(2, 11) is Verdict.APPLY
    seq.applied(11)
    assert seq.classify(2, 11) is Verdict.DUPLICATE
    assert seq.classify(1, 500) is Verdict.STALE
    assert seq.classify(2, 13) is Verdict.GAP
    assert seq.classify(3, 1) is Verdict.NEW_EPOCH


def test_sequencer_keeps_its_highest_epoch_across_resyncs() -> None:
    """A snapshot without position, or from an older epoch, leaves it unsynced, never lower."""
    seq = Sequencer()
    seq.baseline(SnapshotMeta(5, 3, 0, "a"))
    seq.baseline(None)  # Redis restarted empty
    assert (seq.epoch, seq.synced) == (5, False)
    assert seq.classify(4, 1) is Verdict.STALE  # a deposed leader that published meanwhile
    assert seq.classify(5, 9) is Verdict.UNSYNCED
    seq.baseline(SnapshotMeta(4, 8, 0, "old"))  # the snapshot a stale leader rewrote
    assert (seq.epoch, seq.synced) == (5, False)
    seq.baseline(SnapshotMeta(5, 9, 0, "a"))
    assert (seq.epoch, seq.seq, seq.synced) == (5, 9, True)


def test_sequencer_behind_tells_a_wedged_subscription_from_a_quiet_leader() -> None:
    """Behind only when the leader's recorded position is past what was applied here."""
    seq = Sequencer()
    assert not seq.behind(None)
    seq.baseline(SnapshotMeta(2, 10, 0, "a"))
    assert not seq.behind(SnapshotMeta(2, 10, 0, "a"))  # a quiet leader
    assert seq.behind(SnapshotMeta(2, 12, 0, "a"))
    assert seq.behind(SnapshotMeta(3, 1, 0, "b"))
    assert not seq.behind(SnapshotMeta(1, 99, 0, "old"))
    seq.unsync()
    assert seq.behind(SnapshotMeta(2, 10, 0, "a"))


def test_outbox_coalesces_per_key_keeping_the_place_in_line() -> None:
    """Latest wins per (kind, key) and keeps its original position; others are untouched."""
    box = Outbox(10)
    box.put(Publication(Kind.TICK, "A", "a1"))
    box.put(Publication(Kind.TICK, "B", "b1"))
    box.put(Publication(Kind.SAMPLE, "A", "s1"))
    box.put(Publication(Kind.TICK, "A", "a2"))
    assert box.stats.coalesced == 1 and len(box) == 3
    assert [p.frame for p in box.take(2)] == ["a2", "b1"]
    assert [p.frame for p in box.take(10)] == ["s1"]
    assert not box


def test_outbox_is_bounded_and_counts_what_it_drops() -> None:
    """Past its capacity a new key is dropped and counted; known keys still coalesce."""
    box = Outbox(2)
    assert box.put(Publication(Kind.TICK, "A", "1"))
    assert box.put(Publication(Kind.TICK, "B", "1"))
    assert not box.put(Publication(Kind.TICK, "C", "1"))
    assert box.put(Publication(Kind.TICK, "A", "2"))
    assert (box.stats.dropped, box.stats.coalesced, box.stats.high_water) == (1, 1, 2)
    assert box.clear() == 2 and not box
    with pytest.raises(ValueError, match="positive"):
        Outbox(0)


async def test_local_bus_hands_frames_to_the_sink_and_keeps_a_snapshot() -> None:
    """Standalone: publish goes straight to the local sink; nothing without lead()."""
    received: list[BusMessage] = []
    bus = LocalBus(received.append, node_id="solo")
    await bus.start()
    assert not bus.publish(Kind.TICK, "A", "x")  # not leading
    bus.lead(1)
    assert bus.publish(Kind.TICK, "A", "a1")
    assert bus.publish(Kind.TICK, "A", "a2", asof=10.0)
    assert bus.publish(Kind.DASH, "dashboard", "d1")
    assert bus.publish(Kind.CONTROL, "pairs", "changed")
    assert [m.frame for m in received] == ["a1", "a2", "d1", "changed"]
    assert [m.seq for m in received] == [1, 2, 3, 4] and received[1].asof == 10.0
    snapshot = await bus.snapshot()
    assert snapshot.meta is not None and (snapshot.meta.epoch, snapshot.meta.seq) == (1, 4)
    assert snapshot.get(Kind.TICK, "A").frame == "a2"  # type: ignore[union-attr]
    assert snapshot.get(Kind.DASH, "dashboard").frame == "d1"  # type: ignore[union-attr]
    assert len(snapshot) == 2  # control notices are not kept
    assert str(bus.state) == "local"
    bus.follow()
    assert not bus.publish(Kind.TICK, "A", "late")
    await bus.stop()
    assert str(bus.state) == "stopped"


def test_snapshot_since_epoch_leaves_out_what_a_deposed_leader_wrote() -> None:
    """Entries older than the epoch a node has seen are left out of its resync, and counted."""
    from cotiza.cluster.envelope import Snapshot

    def message(epoch: int, key: str) -> BusMessage:
        return BusMessage(epoch, 1, 0, Kind.TICK, key, f"{key}@{epoch}")

    snapshot = Snapshot(
        SnapshotMeta(4, 9, 0, "old"),
        {Kind.TICK: {"A": message(4, "A"), "B": message(5, "B"), "C": message(6, "C")}},
    )
    kept, left_out = snapshot.since_epoch(5)
    assert left_out == 1 and sorted(kept.entries[Kind.TICK]) == ["B", "C"]
    assert kept.meta == snapshot.meta
    assert snapshot.since_epoch(0) == (snapshot, 0)
