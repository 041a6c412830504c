"""The outbox state machine: latest wins per key, bounded, in order, one write per frame."""

from __future__ import annotations

import random

import pytest

from cotiza.ws.outbox import Outbox, Put


def drain(outbox: Outbox[str]) -> list[str]:
    """Take every waiting frame the way the sender does: take, write, done."""
    written = []
    while (frame := outbox.take()) is not None:
        written.append(frame)
        outbox.done()
    return written


def test_a_new_outbox_is_idle_and_empty() -> None:
    """Nothing waits and nothing is in flight, so a frame may be written at once."""
    outbox: Outbox[str] = Outbox(4)
    assert outbox.idle
    assert len(outbox) == 0
    assert outbox.take() is None


def test_latest_frame_of_a_key_wins_in_its_first_place() -> None:
    """A newer frame of a waiting key replaces the older one where the key first queued."""
    outbox: Outbox[str] = Outbox(8)
    assert outbox.put("AL30", "al30@1") is Put.QUEUED
    assert outbox.put("GD30", "gd30@1") is Put.QUEUED
    assert outbox.put("AL30", "al30@2") is Put.COALESCED
    assert outbox.put("AL30", "al30@3") is Put.COALESCED
    assert outbox.coalesced == 2
    assert len(outbox) == 2
    assert drain(outbox) == ["al30@3", "gd30@1"]


def test_frames_come_out_once_each_in_queue_order() -> None:
    """Distinct keys are written in the order they queued, each exactly once."""
    outbox: Outbox[str] = Outbox(16)
    frames = [f"frame-{i}" for i in range(10)]
    for i, frame in enumerate(frames):
        outbox.put(i, frame)
    assert drain(outbox) == frames
    assert outbox.take() is None
    assert outbox.idle


def test_a_key_taken_for_writing_queues_again_behind_the_others() -> None:
    """Once a frame is taken, a newer frame of its key is a new entry, not a replacement."""
    outbox: Outbox[str] = Outbox(8)
    outbox.put("AL30", "al30@1")
    outbox.put("GD30", "gd30@1")
    assert outbox.take() == "al30@1"
    assert outbox.put("AL30", "al30@2") is Put.QUEUED
    outbox.done()
    assert drain(outbox) == ["gd30@1", "al30@2"]
    assert outbox.coalesced == 0


def test_in_flight_frame_keeps_the_outbox_busy() -> None:
    """While a taken frame is being written the outbox is not idle, so nothing overtakes it."""
    outbox: Outbox[str] = Outbox(4)
    outbox.put("k", "first")
    assert not outbox.idle
    assert outbox.take() == "first"
    assert len(outbox) == 0
    assert not outbox.idle
    outbox.done()
    assert outbox.idle


def test_a_new_key_past_capacity_overflows_and_is_not_stored() -> None:
    """A full outbox refuses a new key with OVERFLOW (evict) and keeps what it had."""
    outbox: Outbox[str] = Outbox(3)
    for key in ("a", "b", "c"):
        assert outbox.put(key, key) is Put.QUEUED
    assert outbox.put("d", "d") is Put.OVERFLOW
    assert len(outbox) == 3
    assert drain(outbox) == ["a", "b", "c"]


def test_a_full_outbox_still_coalesces_waiting_keys() -> None:
    """At capacity, a newer frame of a waiting key still replaces it: no overflow."""
    outbox: Outbox[str] = Outbox(2)
    outbox.put("a", "a1")
    outbox.put("b", "b1")
    assert outbox.put("b", "b2") is Put.COALESCED
    assert drain(outbox) == ["a1", "b2"]


def test_clear_drops_everything_and_reports_how_much() -> None:
    """Clearing (the client is leaving) drops waiting frames and any in-flight mark."""
    outbox: Outbox[str] = Outbox(4)
    for key in ("a", "b", "c"):
        outbox.put(key, key)
    outbox.take()
    assert outbox.clear() == 2
    assert outbox.idle
    assert outbox.take() is None


def test_capacity_must_hold_a_frame() -> None:
    """An outbox that could hold nothing is a configuration error."""
    with pytest.raises(ValueError, match="at least one frame"):
        Outbox(0)


def test_waiting_bytes_are_bounded_and_coalescing_still_replaces() -> None:
    """Pending data is bounded in bytes, not only in frames; latest-wins keeps working."""
    outbox: Outbox[str] = Outbox(1000, max_bytes=10, size=len)
    assert outbox.put("a", "12345") is Put.QUEUED
    assert outbox.put("b", "1234") is Put.QUEUED
    assert outbox.bytes == 9
    assert outbox.put("c", "12") is Put.OVERFLOW  # 11 bytes: over, though only 3 frames
    assert outbox.put("a", "123456") is Put.COALESCED  # replaces 5 bytes with 6: 10
    assert outbox.bytes == 10
    assert outbox.put("a", "1234567") is Put.OVERFLOW  # a bigger replacement is refused too
    assert outbox.take() == "123456"
    assert outbox.bytes == 4
    outbox.done()
    assert outbox.put("c", "12") is Put.QUEUED
    assert drain(outbox) == ["1234", "12"]
    assert outbox.bytes == 0
    outbox.put("d", "1")
    outbox.clear()
    assert outbox.bytes == 0


def test_one_frame_larger_than_the_bound_overflows() -> None:
    outbox: Outbox[bytes] = Outbox(8, max_bytes=4, size=len)
    assert outbox.put("big", b"12345") is Put.OVERFLOW
    with pytest.raises(ValueError, match="size"):
        Outbox(8, max_bytes=4)


def test_random_traffic_matches_a_reference_model() -> None:
    """Under any interleaving of puts and writes: each frame is written at most once, a key's
    frames are written oldest to newest, a written frame was the latest of its key when
    taken, keys come out in first-queued order, and overflow happens exactly when a new key
    finds the outbox full."""
    rng = random.Random(20261201)
    for _ in range(200):
        capacity = rng.randint(1, 5)
        outbox: Outbox[tuple[str, int]] = Outbox(capacity)
        waiting: dict[str, int] = {}  # the reference: key -> latest sequence, in queue order
        written: list[tuple[str, int]] = []
        for seq in range(60):
            if rng.random() < 0.6:
                key = rng.choice("ABCDEFG")
                result = outbox.put(key, (key, seq))
                if key in waiting:
                    assert result is Put.COALESCED
                    waiting[key] = seq
                elif len(waiting) >= capacity:
                    assert result is Put.OVERFLOW
                else:
                    assert result is Put.QUEUED
                    waiting[key] = seq
            else:
                frame = outbox.take()
                if not waiting:
                    assert frame is None
                    continue
                first = next(iter(waiting))
                assert frame == (first, waiting.pop(first))
                written.append(frame)
                outbox.done()
            assert len(outbox) == len(waiting)
        assert len(set(written)) == len(written)
        for key in "ABCDEFG":
            seqs = [seq for k, seq in written if k == key]
            assert seqs == sorted(seqs)
