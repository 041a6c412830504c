"""The backplane's wire format, pure: envelopes, snapshots, and their encoding.

An envelope is ``{"e": epoch, "s": seq, "t": leader_time_ns, "k": kind, "key": key,
"f": frame}`` (plus ``"a"``, the as-of time in epoch seconds, when the publisher gave one)
where ``f`` is the exact client frame, handed to the hub as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

import orjson


class Kind(StrEnum):
    TICK = "tick"  # latest state of one instrument; key: symbol
    SAMPLE = "sample"  # a stored ratio sample with its indicators; key: pair id
    DASH = "dash"  # the dashboard frame; key: "dashboard"
    HEARTBEAT = "hb"  # numbered like everything else, so gaps show; key: ""
    CONTROL = "ctl"  # notices for every node (handover, pairs changed); key: what changed


# Kinds whose latest value per key the snapshot keeps (one Redis hash each).
STORED_KINDS: tuple[Kind, ...] = (Kind.TICK, Kind.SAMPLE, Kind.DASH)


class Publication(NamedTuple):
    """What a leader publishes: a kind, a key and the client frame, with an optional as-of.

    ``at_ns`` is the leader's wall clock when it was published (set by the outbox), so the
    lag measured on the other nodes includes the time spent waiting to be sent.
    """

    kind: Kind
    key: str
    frame: str
    asof: float | None = None
    at_ns: int = 0


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One envelope as a node received (or, on the leader, produced) it."""

    epoch: int
    seq: int
    leader_time_ns: int
    kind: Kind
    key: str
    frame: str
    asof: float | None = None
    received_ns: int = 0  # local wall clock at receipt; 0 for the leader's own messages

    @property
    def lag_ms(self) -> float | None:
        """Leader publish to local receipt, in milliseconds (clocks assumed in sync)."""
        if not self.received_ns:
            return None
        return (self.received_ns - self.leader_time_ns) / 1e6


class EnvelopeError(ValueError):
    """Bytes on the bus that are not a valid envelope."""


def encode(epoch: int, seq: int, leader_time_ns: int, item: Publication) -> bytes:
    body: dict[str, Any] = {
        "e": epoch,
        "s": seq,
        "t": leader_time_ns,
        "k": str(item.kind),
        "key": item.key,
        "f": item.frame,
    }
    if item.asof is not None:
        body["a"] = item.asof
    return orjson.dumps(body)


def decode(data: bytes | str, received_ns: int = 0) -> BusMessage:
    """Parse one envelope; ``EnvelopeError`` when it is not one."""
    try:
        body = orjson.loads(data)
        asof = body.get("a")
        return BusMessage(
            epoch=_int(body["e"]),
            seq=_int(body["s"]),
            leader_time_ns=_int(body["t"]),
            kind=Kind(body["k"]),
            key=_str(body["key"]),
            frame=_str(body["f"]),
            asof=None if asof is None else float(asof),
            received_ns=received_ns,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EnvelopeError(f"not an envelope: {exc}") from None


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected an integer")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Where the leader's stream stood when the snapshot was read."""

    epoch: int
    seq: int
    leader_time_ns: int
    leader_node: str

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> SnapshotMeta | None:
        """From the ``{prefix}:meta`` hash as redis-py returns it (bytes); None if absent."""
        try:
            node = raw.get(b"node", b"")
            return cls(
                epoch=int(raw[b"epoch"]),
                seq=int(raw[b"seq"]),
                leader_time_ns=int(raw[b"t"]),
                leader_node=node.decode() if isinstance(node, bytes) else str(node),
            )
        except (KeyError, ValueError, TypeError):
            return None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The latest value of every stored key, and the stream position it corresponds to."""

    meta: SnapshotMeta | None
    entries: dict[Kind, dict[str, BusMessage]] = field(default_factory=dict)
    invalid: int = 0  # entries that could not be decoded (skipped)

    def messages(self) -> list[BusMessage]:
        """Every entry, ticks first, then samples, then the dashboard frame."""
        return [m for kind in STORED_KINDS for m in self.entries.get(kind, {}).values()]

    def get(self, kind: Kind, key: str) -> BusMessage | None:
        return self.entries.get(kind, {}).get(key)

    def since_epoch(self, epoch: int) -> tuple[Snapshot, int]:
        """The entries written under ``epoch`` or later, and how many were left out.

        A node that has seen ``epoch`` already holds every older entry it could trust; an
        older entry in a later snapshot is either one of those or a deposed leader's write
        that Redis accepted after a restart made it forget the highest epoch.
        """
        kept: dict[Kind, dict[str, BusMessage]] = {}
        left_out = 0
        for kind, values in self.entries.items():
            kept[kind] = {key: m for key, m in values.items() if m.epoch >= epoch}
            left_out += len(values) - len(kept[kind])
        return Snapshot(self.meta, kept, self.invalid), left_out

    def __len__(self) -> int:
        return sum(len(values) for values in self.entries.values())


class Verdict(StrEnum):
    """What to do with an envelope, given what was applied so far."""

    APPLY = "apply"  # the next one in order
    DUPLICATE = "duplicate"  # already applied (the overlap between a snapshot and the stream)
    STALE = "stale"  # from a lower epoch than the highest seen: a deposed publisher
    GAP = "gap"  # same epoch, some were lost: resync
    NEW_EPOCH = "new_epoch"  # a new leader's stream: resync
    UNSYNCED = "unsynced"  # no position to compare with yet: resync


class Sequencer:
    """The ordering rules of a subscriber, pure: apply by ``(epoch, seq)``.

    ``epoch`` never decreases, so a deposed leader that publishes again (even after Redis
    lost its own record of the highest epoch) is dropped here too.
    """

    def __init__(self) -> None:
        self.epoch = 0  # the highest epoch seen
        self.seq = 0  # the last applied sequence number within ``epoch``
        self.synced = False  # (epoch, seq) is a real position in the stream

    def classify(self, epoch: int, seq: int) -> Verdict:
        if epoch < self.epoch:
            return Verdict.STALE
        if not self.synced:
            return Verdict.UNSYNCED
        if epoch > self.epoch:
            return Verdict.NEW_EPOCH
        if seq <= self.seq:
            return Verdict.DUPLICATE
        if seq > self.seq + 1:
            return Verdict.GAP
        return Verdict.APPLY

    def applied(self, seq: int) -> None:
        """Record that the envelope classified APPLY was applied."""
        self.seq = seq

    def baseline(self, meta: SnapshotMeta | None) -> None:
        """Take the position of a snapshot just read (after subscribing)."""
        if meta is None or meta.epoch < self.epoch:
            self.synced = False  # nothing usable: the next envelope triggers another resync
            return
        self.epoch, self.seq, self.synced = meta.epoch, meta.seq, True

    def behind(self, meta: SnapshotMeta | None) -> bool:
        """Whether the leader has published past what was applied here (a wedge test)."""
        if meta is None or meta.epoch < self.epoch:
            return False
        return (meta.epoch, meta.seq) > (self.epoch, self.seq) or not self.synced

    def unsync(self) -> None:
        """Forget the position (keeping the epoch), e.g. before a reconnection."""
        self.synced = False
