"""Real ``cotiza serve`` processes forming a cluster, for the multi-process tests.

``ClusterRun`` starts nodes on free ports against one PostgreSQL database and one Redis
prefix (a fake Primary, run by the test, is their upstream), and kills every process at
the end. ``TickWatcher`` is a real WebSocket client of one node that records every tick
and whether its connection ever closed. Other engineers' fault tests build on this kit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets
from support.poll import eventually
from support.ports import free_port
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

TOKEN = "cluster-test-token-0123456789"
AL30 = "MERV - XMEV - AL30 - 24hs"
AL30D = "MERV - XMEV - AL30D - 24hs"
INSTRUMENTS = (AL30, AL30D)

# Fast, but with margins for a loaded two-core machine: a node must miss its renewals
# for LEASE_RENEW_DEADLINE before it fences itself.
NODE_ENV: dict[str, str] = {
    "COTIZA_ENV": "test",
    "HOST": "127.0.0.1",
    "MARKET_HOURS": "always",
    "FEED": "primary",
    "PRIMARY_USER": "user",
    "PRIMARY_PASSWORD": "password",
    "PRIMARY_PING_INTERVAL": "1",
    "PRIMARY_PONG_TIMEOUT": "2",
    "PRIMARY_CLOSE_TIMEOUT": "0.5",
    "PRIMARY_BACKOFF_BASE": "0.05",
    "PRIMARY_BACKOFF_CAP": "0.5",
    "FEED_INSTRUMENTS": ",".join(INSTRUMENTS),
    "RATIO_SAMPLE_INTERVAL": "0.5",
    "LEASE_TTL": "5",
    "LEASE_RENEW_DEADLINE": "3",
    "LEASE_RETRY": "0.5",
    "BUS_HEARTBEAT": "0.25",
    "BUS_STALE_AFTER": "1.5",
    "CONTROL_POLL_INTERVAL": "2",
    "NODE_REPORT_INTERVAL": "0.5",
    "API_TOKEN": TOKEN,
    "LOG_LEVEL": "INFO",
    "SHUTDOWN_TIMEOUT": "5",
}


@dataclass
class Node:
    """One ``cotiza serve`` process."""

    name: str
    port: int
    workdir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/cotizaciones"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cotiza", "serve", "--port", str(self.port)],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.alive:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def get(self, path: str, timeout: float = 3.0) -> httpx.Response | None:
        try:
            async with httpx.AsyncClient(base_url=self.url, timeout=timeout) as http:
                return await http.get(path)
        except httpx.HTTPError:
            return None

    async def post(self, path: str, body: Any = None, timeout: float = 10.0) -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=self.url, timeout=timeout) as http:
            return await http.post(path, json=body, headers=headers)

    async def cluster(self) -> dict[str, Any] | None:
        """The ``cluster`` object of ``/health/detailed``; None while the node does not answer."""
        response = await self.get("/health/detailed")
        if response is None or response.status_code not in (200, 503):
            return None
        body: dict[str, Any] = response.json()
        return body.get("cluster")

    async def is_leader(self) -> bool:
        status = await self.cluster()
        return status is not None and bool(status["leader"])

    async def is_following(self, leader: str) -> bool:
        status = await self.cluster()
        return (
            status is not None
            and not status["leader"]
            and status["leader_node"] == leader
            and status["backplane"]["connected"]
        )

    async def feed_state(self) -> str | None:
        response = await self.get("/cotizaciones/status")
        return None if response is None else str(response.json()["state"])


@dataclass
class ClusterRun:
    """The nodes of one test: shared database, shared Redis, one prefix, one upstream."""

    workdir: Path
    database_url: str
    backplane: str
    prefix: str
    primary_url: str
    nodes: list[Node] = field(default_factory=list)

    def node(self, name: str, **env: str) -> Node:
        port = free_port()
        environ = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BACKPLANE", "LEASE_", "BUS_", "NODE_", "ROLE", "PRIMARY_"))
        }
        environ.update(NODE_ENV)
        environ.update(
            DATABASE_URL=self.database_url,
            BACKPLANE=self.backplane,
            BACKPLANE_PREFIX=self.prefix,
            PRIMARY_ENV=self.primary_url,
            NODE_ID=name,
            NODE_URL=f"http://127.0.0.1:{port}",
            RUN_DIR=str(self.workdir / name / "var"),
            PYTHONUNBUFFERED="1",
        )
        environ.update(env)
        node = Node(name, port, self.workdir / name, environ)
        self.nodes.append(node)
        return node

    async def start(self, node: Node, *, leader: bool | None = None, timeout: float = 60) -> Node:
        """Start ``node`` and wait until it answers (and leads or not, when asked)."""
        node.start()

        async def up() -> bool:
            assert node.proc is not None
            if node.proc.poll() is not None:
                raise AssertionError(f"{node.name} exited:\n{node.log()[-3000:]}")
            status = await node.cluster()
            return status is not None and (leader is None or status["leader"] is leader)

        await eventually(up, timeout, 0.1, f"{node.name} answering")
        return node

    def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                if node.alive:
                    node.terminate(timeout=10)
            with contextlib.suppress(Exception):
                node.kill()

    def logs(self) -> str:
        return "\n".join(f"--- {n.name}\n{n.log()[-4000:]}" for n in self.nodes)


class TickWatcher:
    """A WebSocket client of one node: subscribed to instruments, every tick timed."""

    def __init__(self, node: Node, instruments: tuple[str, ...] = INSTRUMENTS) -> None:
        self.node = node
        self.instruments = instruments
        self.ticks: list[float] = []  # monotonic receive times
        self.closed: str | None = None  # why the connection ended, if it did
        self.others: list[dict[str, Any]] = []  # the first frames that were not ticks
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TickWatcher:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        self._ws = await websockets.connect(
            self.node.ws_url, additional_headers=headers, open_timeout=10
        )
        await self._ws.send(
            orjson.dumps({"type": "subscribe", "instruments": list(self.instruments)}).decode()
        )
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                frame = orjson.loads(raw)
                if frame.get("type") == "tick":
                    self.ticks.append(time.monotonic())
                elif len(self.others) < 20:
                    self.others.append(frame)
        except ConnectionClosed as exc:
            self.closed = f"closed: {exc}"
            return
        self.closed = "closed by the server"

    def since(self, moment: float) -> int:
        return sum(1 for at in self.ticks if at > moment)

    async def wait_ticks_after(self, moment: float, count: int = 3, timeout: float = 30) -> float:
        """Seconds from ``moment`` until ``count`` ticks arrived after it."""

        async def enough() -> bool:
            return self.since(moment) >= count or self.closed is not None

        try:
            await eventually(enough, timeout, 0.02, "ticks")
        except AssertionError:
            raise AssertionError(
                f"{self.node.name}: {self.since(moment)} ticks since; other frames {self.others}"
            ) from None
        assert self.closed is None, self.closed
        after = [at for at in self.ticks if at > moment]
        return after[0] - moment
