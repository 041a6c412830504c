"""One client's pending frames: latest wins per key, bounded, strictly ordered.

A pure state machine, no I/O and no asyncio. While a client keeps up, the outbox stays
empty and frames go straight to its socket; once it backs up, frames wait here. A frame
whose key is already waiting replaces the waiting one in place (a newer tick of the same
symbol makes the older one worthless), so a backed-up client gets fewer, fresher frames in
the order their keys first queued. A new key past the capacity, or any frame that would
take the waiting bytes past ``max_bytes``, is refused with ``Put.OVERFLOW``: the client
cannot keep up and its owner evicts it. Counting frames alone would let a few large
frames (a dashboard table, a long reply) hold unbounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from enum import Enum
from typing import Generic, TypeVar

T = TypeVar("T")


class Put(Enum):
    """What ``Outbox.put`` did with a frame."""

    QUEUED = "queued"  # waiting under a new key
    COALESCED = "coalesced"  # replaced the waiting frame of the same key
    OVERFLOW = "overflow"  # refused: the outbox is full, the client must be evicted


class Outbox(Generic[T]):
    """Frames waiting for one client's socket, keyed for coalescing."""

    __slots__ = ("_in_flight", "_pending", "_size", "bytes", "capacity", "coalesced", "max_bytes")

    def __init__(
        self,
        capacity: int,
        max_bytes: int | None = None,
        size: Callable[[T], int] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("an outbox needs room for at least one frame")
        if max_bytes is not None and size is None:
            raise ValueError("a byte bound needs the size of a frame")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._size = size
        self._pending: dict[Hashable, T] = {}
        self._in_flight = False
        self.coalesced = 0
        self.bytes = 0  # of the waiting frames (0 when no size function is given)

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def idle(self) -> bool:
        """Nothing waits and nothing is being written: a new frame may go straight out
        without overtaking an older one."""
        return not self._pending and not self._in_flight

    def put(self, key: Hashable, frame: T) -> Put:
        """Queue ``frame`` under ``key``; the latest frame of a key wins."""
        pending = self._pending
        size = self._size(frame) if self._size is not None else 0
        replaced = pending.get(key)
        total = self.bytes + size
        if replaced is not None and self._size is not None:
            total -= self._size(replaced)
        if self.max_bytes is not None and total > self.max_bytes:
            return Put.OVERFLOW
        if replaced is not None:
            pending[key] = frame
            self.bytes = total
            self.coalesced += 1
            return Put.COALESCED
        if len(pending) >= self.capacity:
            return Put.OVERFLOW
        pending[key] = frame
        self.bytes = total
        return Put.QUEUED

    def take(self) -> T | None:
        """The oldest waiting frame, now in flight until ``done``; None when empty.

        Each frame is taken exactly once: one write per frame.
        """
        pending = self._pending
        if not pending:
            return None
        frame = pending.pop(next(iter(pending)))
        if self._size is not None:
            self.bytes -= self._size(frame)
        self._in_flight = True
        return frame

    def done(self) -> None:
        """The frame in flight has been written (or abandoned)."""
        self._in_flight = False

    def clear(self) -> int:
        """Drop every waiting frame (the client is going away); return how many."""
        dropped = len(self._pending)
        self._pending.clear()
        self.bytes = 0
        self._in_flight = False
        return dropped
