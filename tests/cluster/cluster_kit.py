"""Test helpers of cluster mode: a dedicated redis-server, a TCP proxy that can blackhole
the subscription and a recording bus sink."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from support.poll import eventually_sync
from support.ports import free_port

from cotiza.cluster import BusState, RedisBus
from cotiza.cluster.envelope import BusMessage, Kind, Snapshot
from cotiza.settings import Settings


def cluster_settings(pg_url: str, redis_url: str, prefix: str, **overrides: Any) -> Settings:
    """Settings of one cluster node with timings short enough for tests."""
    values: dict[str, Any] = {
        "database_url": pg_url,
        "backplane": redis_url,
        "backplane_prefix": prefix,
        "node_id": "node-a",
        "node_url": "http://127.0.0.1:1",
        "lease_ttl": 1.5,
        "lease_retry": 0.1,
        "lease_renew_deadline": 1.0,
        "bus_heartbeat": 0.1,
        "bus_stale_after": 0.5,
        "bus_timeout": 0.5,
        "bus_retry_base": 0.02,
        "bus_retry_max": 0.2,
        "node_report_interval": 0.1,
        "node_ttl": 1.0,
        "control_poll_interval": 0.5,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class RecordingSink:
    """A ``BusSink`` that keeps what it was given, in order."""

    applied: list[BusMessage] = field(default_factory=list)
    resyncs: list[Snapshot] = field(default_factory=list)
    latest: dict[tuple[Kind, str], str] = field(default_factory=dict)

    def apply(self, message: BusMessage) -> None:
        self.applied.append(message)
        self.latest[(message.kind, message.key)] = message.frame

    def resync(self, snapshot: Snapshot) -> None:
        self.resyncs.append(snapshot)
        for message in snapshot.messages():
            self.latest[(message.kind, message.key)] = message.frame

    def frames(self, kind: Kind, key: str) -> list[str]:
        return [m.frame for m in self.applied if m.kind is kind and m.key == key]


class RedisServer:
    """A redis-server of the test's own on a free port, without persistence: killable."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.url_for(0)

    def url_for(self, database: int, password: str | None = None) -> str:
        secret = password if password is not None else self.password
        return f"redis://{f':{secret}@' if secret else ''}127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / "redis.log"),
                *(("--requirepass", self.password) if self.password else ()),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        eventually_sync(self.answers, 10, f"redis-server answering on {self.port}", 0.02)

    def answers(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock,
        ):
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        return False

    def kill(self) -> None:
        """SIGKILL: no goodbye to any client, every key lost."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()


class TcpProxy:
    """A loopback TCP proxy (to Redis or PostgreSQL) that can blackhole connections:
    those carrying SUBSCRIBE, or all of them.

    A blackholed connection stays open on both sides but nothing crosses it any more in
    either direction: what a wedged subscription looks like from the node.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []
        self.blackhole_new_subscriptions = False
        self.blackhole_everything = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def pg_url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in self._links:
            link.close()
        if self._server is not None:
            await self._server.wait_closed()

    def blackhole_subscriptions(self, *, persistent: bool = False) -> int:
        """Blackhole every open subscription (and, if persistent, every later one)."""
        self.blackhole_new_subscriptions = persistent
        hit = 0
        for link in self._links:
            if link.subscribed and not link.blackholed:
                link.blackholed = True
                hit += 1
        return hit

    def heal(self) -> None:
        self.blackhole_new_subscriptions = False
        self.blackhole_everything = False

    def blackhole_all(self) -> None:
        """Blackhole every connection, open or new: the target seems gone, sockets open."""
        self.blackhole_everything = True
        for link in self._links:
            link.blackholed = True

    @property
    def subscriptions(self) -> int:
        return sum(1 for link in self._links if link.subscribed and not link.closed)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        link = _Link(self, writer, up_writer)
        link.blackholed = self.blackhole_everything
        self._links.append(link)
        await asyncio.gather(
            link.pump(reader, up_writer, upstream=True),
            link.pump(up_reader, writer, upstream=False),
            return_exceptions=True,
        )
        link.close()


class _Link:
    def __init__(
        self, proxy: TcpProxy, client: asyncio.StreamWriter, server: asyncio.StreamWriter
    ) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.subscribed = False
        self.blackholed = False
        self.closed = False

    async def pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        while data := await reader.read(65536):
            if upstream and b"SUBSCRIBE" in data.upper():
                self.subscribed = True
                if self.proxy.blackhole_new_subscriptions:
                    self.blackholed = True
            if self.blackholed:
                continue
            writer.write(data)
            await writer.drain()
        self.close()

    def close(self) -> None:
        self.closed = True
        for writer in (self.client, self.server):
            writer.close()


async def delete_prefix(url: str, prefix: str) -> None:
    """Remove every key of a test's prefix from a shared Redis."""
    client = aioredis.Redis.from_url(url)
    try:
        names = [name async for name in client.scan_iter(match=f"{prefix}:*", count=500)]
        if names:
            await client.delete(*names)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def started(*buses: RedisBus) -> AsyncIterator[None]:
    """Start ``buses``, wait until each subscriber is connected; stop them at the end."""
    for bus in buses:
        await bus.start()
    try:
        for bus in buses:
            await bus.subscriber.wait_for(lambda s: s.state is BusState.CONNECTED, 10)
        yield
    finally:
        for bus in buses:
            await bus.stop()
