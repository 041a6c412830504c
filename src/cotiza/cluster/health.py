"""How a cluster node judges and reports itself: health checks and Prometheus metrics.

One rule: an outage of something shared (Redis, PostgreSQL, upstream, no leader) never
un-readies every node at once; only node-local faults fail readiness. So
``cluster:leader`` only warns, ``backplane:state`` warns while reconnecting (Redis down is
shared) and fails when this node's own subscription is wedged, and ``backplane:lag`` warns.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from typing_extensions import TypedDict

from cotiza.cluster.bus import LAG_BOUNDS_MS, BusState, BusStats
from cotiza.health import Check, Scope, Status

if TYPE_CHECKING:
    from cotiza.cluster.node import ClusterNode

LAG_WARN_MS = 250.0
ROLES = ("standalone", "auto", "feeder", "edge")


class BackplaneHealth(TypedDict):
    """Exactly the issue's keys; the subscription's state is the ``backplane:state`` check."""

    connected: bool
    lag_ms: float | None


class ClusterHealth(TypedDict):
    """The ``cluster`` object of ``/health/detailed``."""

    role: str
    node_id: str | None
    leader: bool
    leader_node: str | None
    epoch: int | None
    backplane: BackplaneHealth


def standalone_status(node_id: str | None) -> ClusterHealth:
    """The ``cluster`` object of ``/health/detailed`` when BACKPLANE is unset."""
    return {
        "role": "standalone",
        "node_id": node_id,
        "leader": True,
        "leader_node": node_id,
        "epoch": 1,
        "backplane": {"connected": False, "lag_ms": None},
    }


def cluster_checks(node: ClusterNode) -> list[Callable[[], Check]]:
    """The node's checks, for ``HealthAssessor.add_check``."""

    def leader() -> Check:
        status = node.keeper.status()
        value = {
            "state": str(status["state"]),
            "leader_node": node.leader_node,
            "epoch": node.epoch,
        }
        if node.is_leader or node.leader_node is not None:
            return Check("cluster:leader", Status.PASS, value, None, None, Scope.READINESS)
        return Check(
            "cluster:leader", Status.WARN, value, None, "no leader holds the lease", Scope.READINESS
        )

    def backplane_state() -> Check:
        state = node.bus.state
        if state is BusState.CONNECTED:
            return Check("backplane:state", Status.PASS, str(state), None, None, Scope.READINESS)
        if state is BusState.WEDGED:
            note = "this node's subscription receives nothing while Redis answers"
            return Check("backplane:state", Status.FAIL, str(state), None, note, Scope.READINESS)
        note = "the backplane does not answer (shared outage): retrying"
        return Check("backplane:state", Status.WARN, str(state), None, note, Scope.READINESS)

    def backplane_lag() -> Check:
        lag = node.bus.lag_ms
        if lag is None:
            return Check("backplane:lag", Status.PASS, None, "ms", None, Scope.READINESS)
        status = Status.WARN if lag > LAG_WARN_MS else Status.PASS
        return Check("backplane:lag", status, round(lag, 3), "ms", None, Scope.READINESS)

    return [leader, backplane_state, backplane_lag]


def cluster_metrics(node: ClusterNode | None) -> Iterator[Metric]:
    """Role, epoch, leader changes, bus lag and the bus counters; standalone: role only."""
    role = GaugeMetricFamily("cotiza_cluster_role", "1 for this process's role", labels=["role"])
    current = "standalone" if node is None else str(node.role)
    for name in ROLES:
        role.add_metric([name], 1.0 if name == current else 0.0)
    yield role
    leader = 1.0 if node is None or node.is_leader else 0.0
    yield GaugeMetricFamily("cotiza_cluster_leader", "1 while this process leads", value=leader)
    if node is None:
        return
    stats = node.bus.stats
    keeper = node.keeper.stats

    def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"cotiza_cluster_{name}", doc, value=value)

    def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
        return CounterMetricFamily(f"cotiza_cluster_{name}", doc, value=value)

    yield gauge("epoch", "Epoch of the current term (0: unknown)", float(node.epoch or 0))
    yield counter("leader_changes", "Terms this process began or ended", node.leader_changes)
    yield counter("elections", "Terms this process won", keeper.elections)
    if keeper.last_renew_seconds is not None:
        yield gauge(
            "lease_renew_seconds", "Duration of the last renewal", keeper.last_renew_seconds
        )
    connected = 1.0 if node.bus.state is BusState.CONNECTED else 0.0
    yield gauge("backplane_connected", "1 while the bus subscription is connected", connected)
    if stats.last_lag_ms is not None:
        yield gauge(
            "bus_lag_last_seconds",
            "Leader publish to local receipt, last envelope",
            stats.last_lag_ms / 1000,
        )
    yield bus_lag_histogram(stats)
    yield counter("bus_gaps", "Sequence gaps seen on the bus", stats.gaps)
    yield counter("bus_resyncs", "Snapshot reads after the first", stats.resyncs)
    yield counter("bus_reconnects", "Bus subscription reconnections", stats.reconnects)
    yield counter("bus_wedges", "Times the subscription was found wedged", stats.wedges)
    yield counter("bus_published", "Envelopes published (leader)", stats.published)
    yield counter("bus_applied", "Envelopes applied from the bus", stats.applied)
    yield counter(
        "outbox_coalesced", "Publications replaced before sending", stats.outbox_coalesced
    )
    yield counter("outbox_dropped", "Publications dropped, outbox full", stats.outbox_dropped)
    yield counter(
        "fenced_publishes", "Publications refused: epoch superseded", stats.fenced_publishes
    )
    yield counter("fenced_writes", "History items refused: lease lost", node.writer.stats.fenced)


def bus_lag_histogram(stats: BusStats) -> HistogramMetricFamily:
    """Leader publish to local receipt of every envelope applied on this node."""
    cumulative = list(itertools.accumulate(stats.lag_buckets))
    bounds = [f"{bound / 1000:g}" for bound in LAG_BOUNDS_MS] + ["+Inf"]
    buckets = list(zip(bounds, cumulative, strict=True))
    return HistogramMetricFamily(
        "cotiza_cluster_bus_lag_seconds",
        "Leader publish to local receipt, per envelope applied",
        buckets=buckets,
        sum_value=stats.lag_sum_ms / 1000,
    )
