"""The leader's outbox towards the backplane, pure: bounded, coalescing, never blocking.

Every tick of an instrument is its whole state, so a newer one replaces an older one still
waiting (latest wins per ``(kind, key)``, keeping its place in line); distinct keys past
the bound are dropped and counted. The tick path only calls ``put``; one sender task
drains batches towards Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

from cotiza.cluster.envelope import Kind, Publication


@dataclass(slots=True)
class OutboxStats:
    accepted: int = 0
    coalesced: int = 0  # replaced by a newer value of the same key before it was sent
    dropped: int = 0  # refused because the outbox was full of other keys
    high_water: int = 0


class Outbox:
    """At most ``capacity`` waiting publications, one per ``(kind, key)``."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._pending: dict[tuple[Kind, str], Publication] = {}
        self.stats = OutboxStats()

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, item: Publication) -> bool:
        """Queue ``item``; False when it was dropped for lack of room."""
        key = (item.kind, item.key)
        pending = self._pending
        if key in pending:
            pending[key] = item  # a dict keeps the original insertion position
            self.stats.coalesced += 1
            return True
        if len(pending) >= self.capacity:
            self.stats.dropped += 1
            return False
        pending[key] = item
        self.stats.accepted += 1
        self.stats.high_water = max(self.stats.high_water, len(pending))
        return True

    def take(self, limit: int) -> list[Publication]:
        """Remove and return up to ``limit`` publications, oldest key first."""
        pending = self._pending
        if len(pending) <= limit:
            batch = list(pending.values())
            pending.clear()
            return batch
        keys = []
        for key in pending:
            keys.append(key)
            if len(keys) == limit:
                break
        return [pending.pop(key) for key in keys]

    def clear(self) -> int:
        """Drop everything waiting (no longer leading); how many were dropped."""
        count = len(self._pending)
        self._pending.clear()
        return count
