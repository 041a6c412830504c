"""Cluster mode: several cotiza processes on Redis (data plane) and PostgreSQL (lease, control).

Standalone (``BACKPLANE`` unset) uses ``LocalLease`` and ``LocalBus``; cluster mode uses
``PgLease`` + ``LeaseKeeper`` and ``RedisBus``, plus the node registry and the control
plane. See ``docs/cluster.md`` for the design.
"""

from cotiza.cluster.bus import Bus, BusSink, BusState, BusStats, LocalBus, LocalSink
from cotiza.cluster.control import (
    ControlListener,
    ControlStore,
    FeedAction,
    FeedCommand,
)
from cotiza.cluster.envelope import BusMessage, Kind, Publication, Snapshot, SnapshotMeta
from cotiza.cluster.keeper import KeeperState, LeaseKeeper
from cotiza.cluster.lease import FEED_LEASE, Lease, LeaseInfo, LocalLease
from cotiza.cluster.pglease import PgLease
from cotiza.cluster.redis_bus import RedisBus
from cotiza.cluster.registry import NodeInfo, NodeRegistry, bus_subscribers, read_nodes
from cotiza.cluster.watchdog import FenceWatchdog
from cotiza.errors import ClusterError, Fenced

__all__ = [
    "FEED_LEASE",
    "Bus",
    "BusMessage",
    "BusSink",
    "BusState",
    "BusStats",
    "ClusterError",
    "ControlListener",
    "ControlStore",
    "FeedAction",
    "FeedCommand",
    "FenceWatchdog",
    "Fenced",
    "KeeperState",
    "Kind",
    "Lease",
    "LeaseInfo",
    "LeaseKeeper",
    "LocalBus",
    "LocalLease",
    "LocalSink",
    "NodeInfo",
    "NodeRegistry",
    "PgLease",
    "Publication",
    "RedisBus",
    "Snapshot",
    "SnapshotMeta",
    "bus_subscribers",
    "read_nodes",
]
