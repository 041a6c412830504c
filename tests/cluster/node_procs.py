"""Real cotiza cluster nodes in subprocesses, and WebSocket clients that watch their ticks.

Used by the fault tests (tests/cluster/test_cluster_faults.py) and by bench/cluster.py;
``node_kit`` is the cluster wiring's own launcher (same idea, fewer knobs: no monitored
nodes, no per-node backplane, no freshness by quote time).
Each node is ``python main.py`` with cluster settings: a PostgreSQL database and a Redis
prefix of the caller's own, short lease and bus timings, the simulated feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "main.py")
MONITOR = str(ROOT / "monitor_service.py")
TOKEN = "cluster-test-token"

# Timings short enough for tests, with the design's proportions (renew deadline below
# TTL minus one retry; stale after several heartbeats).
FAST_CLUSTER = {
    "HOST": "127.0.0.1",
    "COTIZA_ENV": "test",
    "MARKET_HOURS": "always",
    "FEED": "sim",
    "SIM_TICKS_PER_SECOND": "40",
    "RATIO_SAMPLE_INTERVAL": "0.5",
    # Margins for a loaded two-core machine: a node must miss renewals for 3 s to fence.
    "LEASE_TTL": "5",
    "LEASE_RETRY": "0.5",
    "LEASE_RENEW_DEADLINE": "3",
    "BUS_HEARTBEAT": "0.25",
    "BUS_STALE_AFTER": "1.5",
    "BUS_TIMEOUT": "1",
    "BUS_RETRY_BASE": "0.05",
    "BUS_RETRY_MAX": "0.5",
    "NODE_REPORT_INTERVAL": "0.5",
    "NODE_TTL": "3",
    "CONTROL_POLL_INTERVAL": "1",
    "SHUTDOWN_TIMEOUT": "3",
    "LOOP_LAG_FAIL": "2.5",
    "LOG_LEVEL": "INFO",
    "API_TOKEN": TOKEN,
}


def _listeners(port: int) -> list[int]:
    """Pids listening on ``port`` (the node a killed monitor left behind)."""
    import psutil

    pids = []
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == "LISTEN" and conn.pid:
            pids.append(conn.pid)
    return pids


@dataclass
class Node:
    """One cotiza process of the cluster."""

    node_id: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Cluster:
    """Starts nodes for one test or bench trial; ``close`` kills every one of them."""

    def __init__(self, workdir: Path, pg_url: str, redis_url: str, prefix: str, **env: str):
        self.workdir = workdir
        self.pg_url = pg_url
        self.redis_url = redis_url
        self.prefix = prefix
        self.extra = env
        self.nodes: list[Node] = []
        self.http = httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=2.0)

    def env(self, node_id: str, port: int, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "ALERT_"))}
        env.update(FAST_CLUSTER)
        env.update(self.extra)
        env.update(
            DATABASE_URL=self.pg_url,
            BACKPLANE=self.redis_url,
            BACKPLANE_PREFIX=self.prefix,
            NODE_ID=node_id,
            NODE_URL=f"http://127.0.0.1:{port}",
            RUN_DIR=str(self.workdir / f"run-{node_id}"),
        )
        env.update(extra)
        return env

    def start(self, node_id: str, **extra: str) -> Node:
        port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / f"{node_id}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, MAIN, "--port", str(port)],
                cwd=self.workdir,
                env=self.env(node_id, port, **extra),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node = Node(node_id, port, proc, log)
        self.nodes.append(node)
        return node

    def start_monitored(self, node_id: str, *flags: str, **extra: str) -> Node:
        """A node under its own monitor; ``Node.proc`` is the monitor, ``port`` the node's."""
        port = free_port()
        run_dir = self.workdir / f"run-{node_id}"
        log = self.workdir / f"monitor-{node_id}.log"
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, MONITOR, "--port", str(port), "--run-dir", str(run_dir)]
        argv += [*flags, "--", sys.executable, MAIN]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=self.env(node_id, port, **extra),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node = Node(node_id, port, proc, log)
        self.nodes.append(node)
        return node

    async def get(self, node: Node, path: str, timeout: float = 2.0) -> httpx.Response | None:
        try:
            return await self.http.get(node.base + path, timeout=timeout)
        except httpx.HTTPError:
            return None

    async def post(self, node: Node, path: str, timeout: float = 5.0) -> httpx.Response:
        return await self.http.post(node.base + path, timeout=timeout)

    async def ready(self, node: Node) -> bool:
        response = await self.get(node, "/readyz")
        return response is not None and response.status_code == 200

    async def detailed(self, node: Node) -> dict[str, Any] | None:
        response = await self.get(node, "/health/detailed")
        if response is None:
            return None
        with contextlib.suppress(ValueError):
            body = response.json()
            return body if isinstance(body, dict) else None
        return None

    async def block(self, node: Node) -> dict[str, Any] | None:
        """The node's ``cluster`` object of /health/detailed."""
        body = await self.detailed(node)
        block = body.get("cluster") if body else None
        return block if isinstance(block, dict) else None

    async def leader(self, timeout: float, among: list[Node] | None = None) -> Node:
        """The node that says it leads (exactly one of ``among``), within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            leaders = []
            for node in among or self.nodes:
                if node.alive():
                    block = await self.block(node)
                    if block and block.get("leader") is True:
                        leaders.append(node)
            if len(leaders) == 1:
                return leaders[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no single leader within {timeout} s: {leaders}")
            await asyncio.sleep(0.1)

    async def wait_ready(self, *nodes: Node, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for node in nodes:
            while not await self.ready(node):
                if not node.alive():
                    raise AssertionError(f"{node.node_id} exited:\n{node.output()[-3000:]}")
                if time.monotonic() > deadline:
                    tail = node.output()[-3000:]
                    raise AssertionError(f"{node.node_id} not ready in {timeout} s:\n{tail}")
                await asyncio.sleep(0.1)

    async def close(self) -> None:
        for node in self.nodes:
            node.signal(signal.SIGCONT)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(node.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.proc.wait(10)
        # A monitored node runs in a session of its own, started by its monitor.
        for node in self.nodes:
            for pid in _listeners(node.port):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
        await self.http.aclose()


@dataclass
class Watcher:
    """A WebSocket client of one node: subscribes to every cached symbol, records ticks."""

    node: Node
    ticks: list[tuple[float, str, int]] = field(default_factory=list)  # (monotonic, symbol, ts)
    closed: int | None = None  # the close code, once the server closed it
    error: str | None = None
    _task: asyncio.Task[None] | None = None
    _subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, symbols: list[str], timeout: float = 10) -> None:
        self._task = asyncio.create_task(self._run(symbols))
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def _run(self, symbols: list[str]) -> None:
        url = f"ws://127.0.0.1:{self.node.port}/ws/cotizaciones?token={TOKEN}"
        try:
            async with websockets.connect(url, open_timeout=5, max_queue=None) as ws:
                await ws.send(json.dumps({"type": "subscribe", "instruments": symbols}))
                self._subscribed.set()
                async for raw in ws:
                    message = json.loads(raw)
                    if message.get("type") == "tick":
                        self.ticks.append(
                            (time.monotonic(), message["symbol"], int(message["ts_ms"]))
                        )
        except websockets.ConnectionClosed as exc:
            self.closed = exc.rcvd.code if exc.rcvd else -1
        except (OSError, websockets.InvalidHandshake) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        self._subscribed.set()

    def fresh_since(self, since: float) -> bool:
        """A tick received after ``since`` (monotonic) that is new: its quote time moved."""
        newest: dict[str, int] = {}
        for at, symbol, ts in self.ticks:
            if at <= since:
                newest[symbol] = max(ts, newest.get(symbol, 0))
            elif ts > newest.get(symbol, 0):
                return True
        return False

    def first_fresh_after(self, since: float) -> float | None:
        """When (monotonic) the first new tick after ``since`` arrived; None if none yet."""
        newest: dict[str, int] = {}
        for at, symbol, ts in self.ticks:
            if at <= since:
                newest[symbol] = max(ts, newest.get(symbol, 0))
            elif ts > newest.get(symbol, 0):
                return at
        return None

    def last_tick(self) -> float | None:
        return self.ticks[-1][0] if self.ticks else None

    @property
    def connected(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def symbols_of(cluster: Cluster, node: Node, timeout: float = 20) -> list[str]:
    """The symbols a node has quotes for (from /api/quotes), once it has some."""
    deadline = time.monotonic() + timeout
    while True:
        response = await cluster.get(node, "/api/quotes")
        if response is not None and response.status_code == 200:
            quotes = response.json().get("quotes") or []
            found = sorted(q["symbol"] for q in quotes if isinstance(q, dict) and "symbol" in q)
            if found:
                return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{node.node_id} has no quotes after {timeout} s")
        await asyncio.sleep(0.1)
