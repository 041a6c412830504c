"""The Redis backplane's names and connections: keys, clients, and the snapshot read.

Every key and the channel start with ``BACKPLANE_PREFIX``, so several clusters (and
parallel tests) share one Redis. Clients never retry by themselves: the publisher and the
subscriber own reconnection, with their own backoff and timeouts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from cotiza.cluster.envelope import (
    STORED_KINDS,
    BusMessage,
    EnvelopeError,
    Kind,
    Snapshot,
    SnapshotMeta,
    decode,
)
from cotiza.errors import ClusterError
from cotiza.settings import redact_url


@dataclass(frozen=True, slots=True)
class Keys:
    """Every Redis name of one cluster."""

    prefix: str

    @property
    def channel(self) -> str:
        return f"{self.prefix}:bus"

    @property
    def meta(self) -> str:
        return f"{self.prefix}:meta"

    def snapshot(self, kind: Kind) -> str:
        return f"{self.prefix}:snap:{kind}"

    def node(self, node_id: str) -> str:
        return f"{self.prefix}:node:{node_id}"

    @property
    def node_pattern(self) -> str:
        return f"{self.prefix}:node:*"


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


def create_client(url: str, timeout: float) -> aioredis.Redis:
    """A command client (pooled) whose calls fail fast instead of retrying inside."""
    return aioredis.Redis.from_url(
        url,
        protocol=2,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=_no_retry(),
        health_check_interval=0,
        decode_responses=False,
    )


def subscription_connection(url: str, timeout: float) -> Connection:
    """A bare connection for SUBSCRIBE: read and reconnected only by the subscriber loop."""
    kwargs = parse_url(url)
    return Connection(
        **kwargs,  # host, port, db and credentials from the URL
        # RESP2: messages arrive as plain replies to read; RESP3 (redis-py's default) turns
        # them into push frames handled by callbacks that this loop does not want.
        protocol=2,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=_no_retry(),
        health_check_interval=0,
    )


def describe(url: str) -> str:
    """The backplane URL, safe to log."""
    return redact_url(url)


async def read_snapshot(client: aioredis.Redis, keys: Keys, timeout: float) -> Snapshot:
    """Read meta and every stored hash in one MULTI/EXEC: a consistent cut of the stream.

    The publish script writes the snapshot and publishes atomically, so every envelope
    published before this read is in it and every later one has a higher ``(e, s)``.
    """
    try:
        async with asyncio.timeout(timeout):
            pipe = client.pipeline(transaction=True)
            pipe.hgetall(keys.meta)
            for kind in STORED_KINDS:
                pipe.hgetall(keys.snapshot(kind))
            meta_raw, *hashes = await pipe.execute()
    except (RedisError, OSError) as exc:
        raise ClusterError(f"cannot read the backplane snapshot: {exc or 'timeout'}") from exc
    entries: dict[Kind, dict[str, BusMessage]] = {}
    invalid = 0
    for kind, raw in zip(STORED_KINDS, hashes, strict=True):
        values: dict[str, BusMessage] = {}
        for field, data in raw.items():
            try:
                values[field.decode()] = decode(data)
            except (EnvelopeError, UnicodeDecodeError):
                invalid += 1
        entries[kind] = values
    return Snapshot(SnapshotMeta.from_hash(meta_raw), entries, invalid)


async def read_meta(client: aioredis.Redis, keys: Keys, timeout: float) -> SnapshotMeta | None:
    """The leader's last position; raises ``RedisError``/``OSError`` when Redis is down."""
    async with asyncio.timeout(timeout):
        raw = await client.hgetall(keys.meta)
    return SnapshotMeta.from_hash(raw)
