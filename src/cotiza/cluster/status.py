"""What the cluster looks like from outside: the node registry and the lease row, judged.

``read_cluster`` reads both stores once (Redis for the registry, PostgreSQL for the lease);
``judge`` turns that reading into problems: no leader, more than one node claiming to
lead (split brain), a claimant whose epoch or identity disagrees with the lease row.
``cotiza cluster status`` prints it; diagnose's cluster check reports it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy.ext.asyncio import create_async_engine

from cotiza.cluster.backplane import Keys, create_client
from cotiza.cluster.lease import FEED_LEASE, LeaseInfo
from cotiza.cluster.pglease import PgLease
from cotiza.cluster.registry import NodeInfo, read_nodes
from cotiza.errors import ClusterError


class Severity(StrEnum):
    WARN = "warn"
    CRIT = "crit"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the cluster, with how bad it is."""

    severity: Severity
    text: str


@dataclass(frozen=True, slots=True)
class ClusterView:
    """One reading of the registry and the lease row."""

    nodes: list[NodeInfo]
    lease: LeaseInfo | None
    read_at: float = field(default_factory=time.time)  # epoch seconds, this host's clock

    @property
    def claimants(self) -> list[NodeInfo]:
        """The nodes that say they lead."""
        return [node for node in self.nodes if node.leader]

    def age(self, node: NodeInfo) -> float:
        """Seconds since the node last refreshed its entry."""
        return max(0.0, self.read_at - node.reported_at)


def judge(view: ClusterView, stale_after: float) -> list[Problem]:
    """The problems in one reading; empty when exactly one fresh leader matches the lease.

    ``stale_after``: an entry not refreshed for longer is reported (its node is stuck or
    gone; the registry drops it at its TTL).
    """
    problems: list[Problem] = []
    lease, claimants = view.lease, view.claimants
    if not view.nodes:
        problems.append(Problem(Severity.CRIT, "no node is registered"))
    if lease is None:
        problems.append(Problem(Severity.CRIT, "no lease row: no node has ever campaigned"))
    elif not lease.held:
        problems.append(
            Problem(Severity.CRIT, f"no leader: the lease is free (epoch {lease.epoch})")
        )
    if len(claimants) > 1:
        names = ", ".join(f"{n.node_id} (epoch {n.epoch})" for n in claimants)
        problems.append(
            Problem(Severity.CRIT, f"split brain: {len(claimants)} nodes lead: {names}")
        )
    elif not claimants and view.nodes:
        problems.append(Problem(Severity.CRIT, "no registered node claims leadership"))
    if lease is not None and lease.held:
        for node in claimants:
            if node.node_id != lease.holder:
                problems.append(
                    Problem(
                        Severity.CRIT,
                        f"{node.node_id} claims to lead but the lease is held by {lease.holder}",
                    )
                )
            elif node.epoch != lease.epoch:
                problems.append(
                    Problem(
                        Severity.CRIT,
                        f"epoch mismatch: {node.node_id} leads under epoch {node.epoch}, "
                        f"the lease row is at {lease.epoch}",
                    )
                )
        if lease.holder not in {node.node_id for node in view.nodes}:
            problems.append(
                Problem(Severity.WARN, f"the lease holder {lease.holder} is not registered")
            )
    for node in view.nodes:
        if view.age(node) > stale_after:
            problems.append(
                Problem(
                    Severity.WARN,
                    f"{node.node_id} has not reported for {view.age(node):.1f} s",
                )
            )
    return problems


def sqlalchemy_url(database_url: str) -> str:
    """The async SQLAlchemy URL of a PostgreSQL ``DATABASE_URL`` (any driver spelling)."""
    rest = database_url.split("://", 1)[1]
    return f"postgresql+asyncpg://{rest}"


async def read_lease(database_url: str, timeout: float, name: str = FEED_LEASE) -> LeaseInfo | None:
    """The lease row, read-only; raises ``ClusterError`` when PostgreSQL cannot answer."""
    engine = create_async_engine(
        sqlalchemy_url(database_url), pool_size=1, connect_args={"timeout": timeout}
    )
    try:
        async with asyncio.timeout(timeout):
            return await PgLease(engine, "cotiza-status", None, 0.0, name).current()
    except TimeoutError as exc:
        raise ClusterError(f"cannot read the lease: no answer within {timeout:g} s") from exc
    finally:
        await engine.dispose()


async def read_cluster(
    backplane: str, prefix: str, database_url: str, timeout: float
) -> ClusterView:
    """Read the registry and the lease row at once; ``ClusterError`` if either store is down."""
    client = create_client(backplane, timeout)
    try:
        nodes, lease = await asyncio.gather(
            read_nodes(client, Keys(prefix), timeout), read_lease(database_url, timeout)
        )
    finally:
        await client.aclose()
    return ClusterView(nodes, lease)
