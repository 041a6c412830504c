"""The node registry in Redis: entries with a TTL, read back for status and diagnose."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
from cluster_kit import RecordingSink
from support.poll import eventually

from cotiza.cluster import BusState, NodeInfo, NodeRegistry, RedisBus, bus_subscribers, read_nodes
from cotiza.cluster.backplane import Keys, create_client
from cotiza.errors import ClusterError
from cotiza.settings import Settings

pytestmark = [pytest.mark.cluster]


def describe_as(node_id: str, **extra: object) -> Callable[[], NodeInfo]:
    def describe() -> NodeInfo:
        values: dict[str, object] = {
            "node_id": node_id,
            "role": "auto",
            "url": f"http://127.0.0.1/{node_id}",
            "leader": False,
            "epoch": None,
            "clients": 3,
            "bus_state": "connected",
            "bus_lag_ms": 0.4,
            "pid": os.getpid(),
            "started_at": 1.0,
        }
        values.update(extra)
        return NodeInfo(**values)  # type: ignore[arg-type]

    return describe


async def test_nodes_register_with_a_ttl_and_leave_on_stop(
    bus_settings: Callable[..., Settings], shared_redis: str, prefix: str
) -> None:
    """Each node's entry is readable while it reports, gone after stop or after its TTL."""
    settings = bus_settings()
    client, keys = create_client(shared_redis, 1.0), Keys(prefix)
    a = NodeRegistry(client, keys, describe_as("a", leader=True, epoch=4), interval=0.05,
                     ttl=settings.node_ttl, timeout=1.0)  # fmt: skip
    b = NodeRegistry(client, keys, describe_as("b"), interval=0.05, ttl=0.5, timeout=1.0)
    try:
        await a.start()
        await b.start()
        await eventually(lambda: a.reports >= 2 and b.reports >= 2, 5)
        nodes = await read_nodes(client, keys, 1.0)
        assert [n.node_id for n in nodes] == ["a", "b"]
        assert nodes[0].leader and nodes[0].epoch == 4 and nodes[0].clients == 3
        assert time.time() - nodes[0].reported_at < 5
        await a.stop()
        assert [n.node_id for n in await read_nodes(client, keys, 1.0)] == ["b"]
        assert b._task is not None
        b._task.cancel()  # b dies without saying goodbye: its entry expires by itself

        async def only_nobody() -> bool:
            return not await read_nodes(client, keys, 1.0)

        await eventually(only_nobody, 5, interval=0.05)
    finally:
        await a.stop()
        await b.stop()
        await client.aclose()


async def test_bus_subscribers_counts_one_subscription_per_node(
    bus_settings: Callable[..., Settings], shared_redis: str, prefix: str
) -> None:
    """PUBSUB NUMSUB on the bus channel shows one subscriber per running node."""
    client, keys = create_client(shared_redis, 1.0), Keys(prefix)
    buses = [RedisBus(bus_settings(node_id=n), RecordingSink()) for n in ("a", "b", "c")]
    try:
        assert await bus_subscribers(client, keys, 1.0) == 0
        for bus in buses:
            await bus.start()
        for bus in buses:
            await bus.subscriber.wait_for(lambda s: s.state is BusState.CONNECTED, 10)
        assert await bus_subscribers(client, keys, 1.0) == 3
        await buses[0].stop()

        async def two() -> bool:
            return await bus_subscribers(client, keys, 1.0) == 2

        await eventually(two, 5, interval=0.05)
    finally:
        for bus in buses:
            await bus.stop()
        await client.aclose()


async def test_registry_reads_fail_clearly_when_redis_is_down() -> None:
    """An unreachable backplane gives ClusterError, and a reporter keeps retrying quietly."""
    client, keys = create_client("redis://127.0.0.1:1/0", 0.2), Keys("nowhere")
    registry = NodeRegistry(client, keys, describe_as("a"), interval=0.02, ttl=1, timeout=0.2)
    try:
        with pytest.raises(ClusterError, match="registry"):
            await read_nodes(client, keys, 0.5)
        with pytest.raises(ClusterError, match="subscribers"):
            await bus_subscribers(client, keys, 0.5)
        await registry.start()
        await eventually(lambda: registry.failures >= 3, 5)
        assert registry.reports == 0
    finally:
        await registry.stop()
        await client.aclose()
