"""The bus: how the leader's frames reach every process's hub.

``Bus`` is the interface; ``LocalBus`` is the standalone process (frames go straight to
the local sink, the hub) and ``cotiza.cluster.redis_bus.RedisBus`` the cluster's Redis
backplane. The leader side is the same for both: ``lead(epoch)``, then ``publish()``
(synchronous, never waits on the network), ``follow()`` when deposed. Followers receive
the leader's stream through a ``BusSink``.
"""

from __future__ import annotations

import bisect
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Protocol

from cotiza.cluster.envelope import (
    STORED_KINDS,
    BusMessage,
    Kind,
    Snapshot,
    SnapshotMeta,
)

LocalSink = Callable[[BusMessage], None]

# Upper bounds (ms) of the bus lag histogram: fine around the few milliseconds a healthy
# loopback bus takes, coarse up to the 250 ms at which backplane:lag warns and beyond.
LAG_BOUNDS_MS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0)


class BusSink(Protocol):
    """Where a follower's bus delivers the leader's stream (phase B: the backplane feed).

    Both methods run on the event loop and must only enqueue work, like quote listeners.
    """

    def apply(self, message: BusMessage) -> None:
        """The next message of the stream, in order."""

    def resync(self, snapshot: Snapshot) -> None:
        """After a gap, a new leader or a reconnection: the latest value of every key.

        Upsert only: a key missing from the snapshot keeps its last value (it goes stale by
        the usual rules), so an empty snapshot after a Redis restart erases nothing.
        """


class BusState(StrEnum):
    LOCAL = "local"  # standalone: no backplane
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"  # the backplane does not answer: retrying with backoff
    WEDGED = "wedged"  # Redis answers but this node's subscription receives nothing
    STOPPED = "stopped"


@dataclass(slots=True)
class BusStats:
    """Counters of one node's bus, for metrics and health."""

    published: int = 0  # envelopes that reached Redis (leader)
    send_batches: int = 0
    send_failures: int = 0  # batches lost to a Redis error (a keyframe follows)
    outbox_coalesced: int = 0
    outbox_dropped: int = 0
    fenced_publishes: int = 0  # envelopes Redis refused: a higher epoch had published
    keyframes: int = 0
    heartbeats: int = 0
    received: int = 0  # envelopes read from the subscription
    applied: int = 0
    duplicates: int = 0
    stale_dropped: int = 0  # envelopes from a lower epoch
    invalid: int = 0  # bytes on the channel that were no envelope
    gaps: int = 0
    resyncs: int = 0  # snapshot reads after the first one (gaps, new epochs, reconnections)
    reconnects: int = 0
    wedges: int = 0
    last_lag_ms: float | None = None
    # Leader publish to local receipt of every envelope applied: per-bucket counts (the
    # last bucket is above every bound), their sum and count.
    lag_buckets: list[int] = field(default_factory=lambda: [0] * (len(LAG_BOUNDS_MS) + 1))
    lag_sum_ms: float = 0.0
    lag_count: int = 0

    def observe_lag(self, lag_ms: float) -> None:
        self.last_lag_ms = lag_ms
        self.lag_buckets[bisect.bisect_left(LAG_BOUNDS_MS, lag_ms)] += 1
        self.lag_sum_ms += lag_ms
        self.lag_count += 1

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Bus(ABC):
    """Publish (leader), subscribe (every other node), snapshot (anyone)."""

    def __init__(self, local_sink: LocalSink | None = None) -> None:
        self.local_sink = local_sink
        self.stats = BusStats()
        self._epoch: int | None = None
        self._seq = 0

    @property
    def epoch(self) -> int | None:
        """The epoch this node publishes under, while leading."""
        return self._epoch

    @property
    def leading(self) -> bool:
        return self._epoch is not None

    @property
    @abstractmethod
    def state(self) -> BusState: ...

    @property
    def lag_ms(self) -> float | None:
        return self.stats.last_lag_ms

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    def lead(self, epoch: int) -> None:
        """Publish under ``epoch`` from now on (called once the lease is won)."""
        self._epoch = epoch
        self._seq = 0

    def follow(self) -> None:
        """Stop publishing (deposed): whatever waits to be sent is dropped."""
        self._epoch = None

    def publish(self, kind: Kind, key: str, frame: str, asof: float | None = None) -> bool:
        """Hand one frame to the local sink and (cluster) to the other nodes; never blocks.

        False when this node is not leading (nothing is published).
        """
        epoch = self._epoch
        if epoch is None:
            return False
        self._seq += 1
        message = BusMessage(epoch, self._seq, time.time_ns(), kind, key, frame, asof)
        if self.local_sink is not None:
            self.local_sink(message)
        self._send(message)
        return True

    @abstractmethod
    def _send(self, message: BusMessage) -> None:
        """Pass a message on to the other nodes (the local sink already has it).

        ``message.seq`` counts local publishes; the backplane numbers what it actually
        sends, after coalescing.
        """

    @abstractmethod
    async def snapshot(self) -> Snapshot:
        """The latest value of every stored key, as the cluster (or this process) knows it."""


class LocalBus(Bus):
    """The standalone process: the sink is the only receiver; the snapshot is kept here."""

    def __init__(self, local_sink: LocalSink | None = None, node_id: str = "standalone") -> None:
        super().__init__(local_sink)
        self.node_id = node_id
        self._latest: dict[Kind, dict[str, BusMessage]] = {kind: {} for kind in STORED_KINDS}
        self._running = False
        self._last: BusMessage | None = None

    @property
    def state(self) -> BusState:
        return BusState.LOCAL if self._running else BusState.STOPPED

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        self._running = False

    def _send(self, message: BusMessage) -> None:
        self._last = message
        self.stats.published += 1
        if message.kind in self._latest:
            self._latest[message.kind][message.key] = message

    async def snapshot(self) -> Snapshot:
        last = self._last
        meta = None
        if last is not None:
            meta = SnapshotMeta(last.epoch, last.seq, last.leader_time_ns, self.node_id)
        return Snapshot(meta, {kind: dict(values) for kind, values in self._latest.items()})
