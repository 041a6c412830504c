"""The node registry: each process announces itself in Redis with a TTL.

``{prefix}:node:{node_id}`` holds one JSON object (role, URL, clients, bus state and lag,
leader flag, epoch), refreshed every ``NODE_REPORT_INTERVAL`` and gone ``NODE_TTL`` after
the node stops refreshing it. ``read_nodes`` and ``bus_subscribers`` are what
``cotiza cluster status`` and diagnose read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cotiza.cluster.backplane import Keys
from cotiza.cluster.tasks import stop_task
from cotiza.errors import ClusterError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What one node says about itself."""

    node_id: str
    role: str  # auto | feeder | edge
    url: str
    leader: bool
    epoch: int | None
    clients: int
    bus_state: str
    bus_lag_ms: float | None
    pid: int
    started_at: float  # epoch seconds
    reported_at: float = 0.0  # epoch seconds, set when written

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes | str) -> NodeInfo:
        body: dict[str, Any] = orjson.loads(data)
        names = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in body.items() if key in names})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class NodeRegistry:
    """Keeps this node's entry fresh; idempotent ``start``/``stop`` (stop removes it)."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        describe: Callable[[], NodeInfo],
        *,
        interval: float,
        ttl: float,
        timeout: float,
    ) -> None:
        self._client = client
        self._keys = keys
        self._describe = describe
        self.interval = interval
        self.ttl = ttl
        self.timeout = timeout
        self.reports = 0
        self.failures = 0
        self._node_id: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="node-registry")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        await stop_task(task)
        if self._node_id is not None:
            try:
                async with asyncio.timeout(self.timeout):
                    await self._client.delete(self._keys.node(self._node_id))
            except (RedisError, OSError) as exc:
                log.info("could not remove this node from the registry (its TTL will): %s", exc)

    async def report(self) -> NodeInfo:
        """Write this node's entry now; raises ``ClusterError`` when Redis is unreachable."""
        info = self._describe()
        info = NodeInfo(**{**info.as_dict(), "reported_at": time.time()})
        self._node_id = info.node_id
        try:
            async with asyncio.timeout(self.timeout):
                await self._client.set(
                    self._keys.node(info.node_id), info.to_json(), px=int(self.ttl * 1000)
                )
        except (RedisError, OSError) as exc:
            raise ClusterError(f"cannot register the node: {exc or 'timeout'}") from exc
        self.reports += 1
        return info

    async def _run(self) -> None:
        while True:
            try:
                await self.report()
            except ClusterError as exc:
                # Redis down is a shared outage, reported by the bus; keep trying quietly.
                self.failures += 1
                log.debug("%s", exc)
            except Exception:
                # The task's boundary: describing the node failed (a bug); keep reporting.
                self.failures += 1
                log.exception("node registry report failed")
            await asyncio.sleep(self.interval)


async def read_nodes(client: aioredis.Redis, keys: Keys, timeout: float) -> list[NodeInfo]:
    """Every node registered and not expired, sorted by node id."""
    try:
        async with asyncio.timeout(timeout):
            names = [name async for name in client.scan_iter(match=keys.node_pattern, count=100)]
            values = await client.mget(names) if names else []
    except (RedisError, OSError) as exc:
        raise ClusterError(f"cannot read the node registry: {exc or 'timeout'}") from exc
    nodes: list[NodeInfo] = []
    for value in values:
        if value is None:
            continue  # expired between SCAN and MGET
        try:
            nodes.append(NodeInfo.from_json(value))
        except (orjson.JSONDecodeError, TypeError) as exc:
            log.warning("ignoring a malformed registry entry: %s", exc)
    return sorted(nodes, key=lambda node: node.node_id)


async def bus_subscribers(client: aioredis.Redis, keys: Keys, timeout: float) -> int:
    """How many connections subscribe to the bus channel right now (one per live node)."""
    try:
        async with asyncio.timeout(timeout):
            reply = await client.pubsub_numsub(keys.channel)
    except (RedisError, OSError) as exc:
        raise ClusterError(f"cannot count the bus subscribers: {exc or 'timeout'}") from exc
    return int(reply[0][1]) if reply else 0
