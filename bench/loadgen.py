"""Shared benchmark parts: server subprocesses, WebSocket client swarms, statistics."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import psutil
import websockets

ROOT = Path(__file__).resolve().parents[1]
ALL = "__all__"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tree(self) -> list[psutil.Process]:
        parent = psutil.Process(self.proc.pid)
        return [parent, *parent.children(recursive=True)]

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss(self) -> int:
        total = 0
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total


@contextlib.contextmanager
def cotiza_server(tmp: Path, **env: str) -> Iterator[ServerProcess]:
    """The real service (``cotiza serve``) as a subprocess on a free port."""
    port = free_port()
    full_env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp}/bench-{port}.db",
        "MARKET_HOURS": "always",
        "STORE_TICKS": "false",
        "LOG_LEVEL": "WARNING",
        "MAX_WEBSOCKET_CONNECTIONS": "20000",
        "WS_RATE_BURST": "1000",
        **env,
    }
    cmd = [sys.executable, "-m", "cotiza", "serve", "--host", "127.0.0.1", "--port", str(port)]
    yield from _run(cmd, full_env, port, "/cotizaciones/health")


@contextlib.contextmanager
def reference_server(rate: float, **env: str) -> Iterator[ServerProcess]:
    """The minimal reference built on ``websockets.broadcast``."""
    port = free_port()
    cmd = [sys.executable, str(ROOT / "bench" / "reference_server.py"), str(port), str(rate)]
    yield from _run(cmd, {**os.environ, **env}, port, None)


def _run(
    cmd: list[str], env: dict[str, str], port: int, health: str | None
) -> Iterator[ServerProcess]:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    server = ServerProcess(proc, port)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                if health:
                    if httpx.get(f"http://127.0.0.1:{port}{health}", timeout=1).is_success:
                        break
                else:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("server did not start")
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class SwarmResult:
    clients: int
    duration: float
    messages: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    disconnected: int = 0

    @property
    def rate(self) -> float:
        return self.messages / self.duration if self.duration else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


async def _client(
    url: str,
    subscribe: bytes | None,
    ready: asyncio.Semaphore,
    connected: list[int],
    start: asyncio.Event,
    stop: asyncio.Event,
    result: SwarmResult,
    sample_every: int,
) -> None:
    async with ready:
        ws = await websockets.connect(url, open_timeout=60, max_size=None, ping_interval=None)
    try:
        if subscribe is not None:
            await ws.send(subscribe)
        connected[0] += 1
        await start.wait()
        count = 0
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            if stop.is_set():
                break
            count += 1
            if count % sample_every == 0:
                message = orjson.loads(raw)
                ts = message.get("ts_ms")
                if ts is not None:
                    result.latencies_ms.append(time.time() * 1000 - ts)
            result.messages += 1
    except websockets.ConnectionClosed:
        result.disconnected += 1
    finally:
        await ws.close()


async def swarm(
    url: str,
    clients: int,
    duration: float,
    subscribe: dict[str, object] | None,
    warmup: float = 2.0,
    sample_every: int = 1,
) -> SwarmResult:
    """Connect ``clients`` clients, let them settle, then count what they receive."""
    result = SwarmResult(clients, duration)
    ready = asyncio.Semaphore(50)
    connected = [0]
    start, stop = asyncio.Event(), asyncio.Event()
    payload = orjson.dumps(subscribe) if subscribe is not None else None
    tasks = [
        asyncio.create_task(
            _client(url, payload, ready, connected, start, stop, result, sample_every)
        )
        for _ in range(clients)
    ]
    while connected[0] < clients:
        if any(t.done() and t.exception() for t in tasks):
            for t in tasks:
                if t.done() and t.exception():
                    raise t.exception()  # type: ignore[misc]
        await asyncio.sleep(0.1)
    start.set()
    await asyncio.sleep(warmup)
    result.messages = 0
    result.latencies_ms.clear()
    await asyncio.sleep(duration)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


def _swarm_worker(
    args: tuple[str, int, float, dict[str, object] | None, float, int],
) -> SwarmResult:
    url, clients, duration, subscribe, warmup, sample_every = args
    import uvloop

    return uvloop.run(swarm(url, clients, duration, subscribe, warmup, sample_every))


def swarm_processes(
    url: str,
    clients: int,
    duration: float,
    subscribe: dict[str, object] | None,
    processes: int = 2,
    warmup: float = 2.0,
    sample_every: int = 1,
) -> SwarmResult:
    """``swarm`` split over several processes, so the load generator's own receive burst
    (one process walking through every client's frame of a tick) does not pile up on one
    core and show up as server latency."""
    import multiprocessing

    share = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    jobs = [(url, n, duration, subscribe, warmup, sample_every) for n in share if n]
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        parts = pool.map(_swarm_worker, jobs)
    total = SwarmResult(clients, duration)
    for part in parts:
        total.messages += part.messages
        total.latencies_ms.extend(part.latencies_ms)
        total.disconnected += part.disconnected
    return total
