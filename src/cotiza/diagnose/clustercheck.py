"""``diagnose``'s cluster-mode checks, run only when ``BACKPLANE`` is set.

- backplane: Redis answers a PING; a pub/sub round trip on a probe channel under the
  prefix; the leader's stream is fresh (its meta time, moved by every publish and the
  1 s heartbeat); one bus subscriber per registered node.
- cluster: the lease row and the registry agree on exactly one fresh leader (no split
  brain, no epoch mismatch), and the stream is published under the lease's epoch.

The cluster packages are imported inside the checks: a standalone diagnose never pays
for Redis or SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from cotiza.diagnose.findings import Finding, Level
from cotiza.settings import redact_url

if TYPE_CHECKING:
    import redis.asyncio as aioredis


@dataclass(frozen=True)
class ClusterConfig:
    backplane: str
    prefix: str
    database_url: str
    timeout: float = 3.0
    stale_after: float = 3.0  # BUS_STALE_AFTER: the leader's stream older than this is stale
    node_stale_after: float = 5.0  # a registry entry older than this is reported


class BackplaneData(TypedDict):
    url: str
    prefix: str
    ping_ms: float
    round_trip_ms: float | None
    subscribers: int
    nodes: int
    leader_node: str | None
    stream_epoch: int | None
    stream_age_s: float | None


class ClusterData(TypedDict):
    lease_holder: str | None
    lease_epoch: int | None
    lease_remaining_s: float | None
    leaders: list[str]
    nodes: list[str]
    problems: list[str]


BACKPLANE_HINT = (
    "check that redis-server runs and BACKPLANE points to it; the nodes keep serving "
    "(quotes go stale) and resync by themselves when it returns"
)


async def _round_trip(client: aioredis.Redis, channel: str, timeout: float) -> float:
    """Seconds from PUBLISH to receiving it on a fresh subscription."""
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(channel)
        await pubsub.get_message(timeout=timeout)  # the subscribe confirmation
        started = time.perf_counter()
        await client.publish(channel, b"diagnose")
        deadline = started + timeout
        while (left := deadline - time.perf_counter()) > 0:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if message is not None and message.get("data") == b"diagnose":
                return time.perf_counter() - started
        raise TimeoutError
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped


async def backplane(config: ClusterConfig) -> Finding:
    from redis.exceptions import RedisError

    from cotiza.cluster.backplane import Keys, create_client, read_meta
    from cotiza.cluster.registry import bus_subscribers, read_nodes
    from cotiza.errors import ClusterError

    shown, keys = redact_url(config.backplane), Keys(config.prefix)
    client = create_client(config.backplane, config.timeout)
    try:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(config.timeout):
                await client.ping()
        except (RedisError, OSError) as exc:
            summary = f"{shown}: {type(exc).__name__}: {exc or 'no answer'}"[:300]
            return Finding("backplane", Level.CRIT, summary, [], BACKPLANE_HINT)
        ping = time.perf_counter() - started
        try:
            trip: float | None = await _round_trip(
                client, f"{config.prefix}:diagnose:{uuid.uuid4().hex[:8]}", config.timeout
            )
        except (RedisError, OSError):
            trip = None
        try:
            meta = await read_meta(client, keys, config.timeout)
            nodes = await read_nodes(client, keys, config.timeout)
            subscribers = await bus_subscribers(client, keys, config.timeout)
        except (RedisError, OSError, ClusterError) as exc:
            summary = f"{shown} answered PING but not the registry: {exc}"[:300]
            return Finding("backplane", Level.CRIT, summary, [], BACKPLANE_HINT)
    finally:
        await client.aclose()
    age = None if meta is None else max(0.0, time.time() - meta.leader_time_ns / 1e9)
    data: BackplaneData = {
        "url": shown,
        "prefix": config.prefix,
        "ping_ms": round(ping * 1000, 2),
        "round_trip_ms": None if trip is None else round(trip * 1000, 2),
        "subscribers": subscribers,
        "nodes": len(nodes),
        "leader_node": meta.leader_node if meta else None,
        "stream_epoch": meta.epoch if meta else None,
        "stream_age_s": None if age is None else round(age, 3),
    }
    head = f"{shown} prefix {config.prefix!r}: ping {ping * 1000:.1f} ms"
    if trip is not None:
        head += f", pub/sub round trip {trip * 1000:.1f} ms"
    lines = [f"bus subscribers {subscribers}, registered nodes {len(nodes)}"]
    if meta is not None and age is not None:
        lines.append(
            f"stream: {meta.leader_node} epoch {meta.epoch} seq {meta.seq}, {age:.1f} s ago"
        )
    problems: list[str] = []
    if trip is None:
        problems.append("a pub/sub message did not come back")
    if meta is None:
        problems.append(f"no leader has published under prefix {config.prefix!r}")
    elif age is not None and age > config.stale_after:
        problems.append(f"the leader's stream is {age:.1f} s old (> {config.stale_after:g} s)")
    if subscribers < len(nodes):
        problems.append(
            f"{len(nodes) - subscribers} registered node(s) have no bus subscription "
            "(wedged or reconnecting)"
        )
    if problems:
        hint = (
            "see `cotiza cluster status` and each node's /health/detailed "
            "(backplane:state, cluster:leader)"
        )
        return Finding(
            "backplane", Level.WARN, f"{head}; {problems[0]}", lines + problems[1:], hint, data
        )
    return Finding("backplane", Level.OK, head, lines, None, data)


async def cluster(config: ClusterConfig) -> Finding:
    from cotiza.cluster.backplane import Keys, create_client, read_meta
    from cotiza.cluster.status import Problem, Severity, judge, read_cluster
    from cotiza.errors import ClusterError

    try:
        view = await read_cluster(
            config.backplane, config.prefix, config.database_url, config.timeout
        )
        client = create_client(config.backplane, config.timeout)
        try:
            meta = await read_meta(client, Keys(config.prefix), config.timeout)
        finally:
            await client.aclose()
    except (ClusterError, OSError) as exc:
        hint = "check BACKPLANE and DATABASE_URL; `cotiza cluster status` reads the same"
        return Finding("cluster", Level.CRIT, f"cannot read the cluster: {exc}"[:300], [], hint)
    problems = judge(view, config.node_stale_after)
    lease = view.lease
    if lease is not None and lease.held and meta is not None and meta.epoch > lease.epoch:
        problems.append(
            Problem(
                Severity.CRIT,
                f"the bus carries epoch {meta.epoch}, above the lease's {lease.epoch}",
            )
        )
    data: ClusterData = {
        "lease_holder": lease.holder if lease else None,
        "lease_epoch": lease.epoch if lease else None,
        "lease_remaining_s": None
        if lease is None or lease.remaining is None
        else round(lease.remaining, 3),
        "leaders": [node.node_id for node in view.claimants],
        "nodes": [node.node_id for node in view.nodes],
        "problems": [p.text for p in problems],
    }
    lines = [
        f"{node.node_id:<20} {node.role:<6} {'leader' if node.leader else '-':<6} "
        f"epoch {node.epoch if node.epoch is not None else '-'}  "
        f"{view.age(node):.1f} s ago  {node.url}"
        for node in view.nodes
    ]
    if lease is not None and lease.held:
        head = (
            f"leader {lease.holder}, epoch {lease.epoch}, lease renewed "
            f"(expires in {lease.remaining or 0:.1f} s); {len(view.nodes)} node(s)"
        )
    else:
        head = f"no lease holder; {len(view.nodes)} node(s)"
    if any(p.severity is Severity.CRIT for p in problems):
        critical = next(p for p in problems if p.severity is Severity.CRIT)
        hint = (
            "split brain or no leader: check every node's /health/detailed cluster block; a "
            "deposed leader fences itself within LEASE_RENEW_DEADLINE; restart one that does not"
        )
        others = [p.text for p in problems if p is not critical]
        return Finding("cluster", Level.CRIT, critical.text, lines + others, hint, data)
    if problems:
        rest = [p.text for p in problems[1:]]
        return Finding(
            "cluster", Level.WARN, f"{head}; {problems[0].text}", lines + rest, None, data
        )
    return Finding("cluster", Level.OK, head, lines, None, data)
