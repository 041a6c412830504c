"""Recovery and diagnosis times of cotiza's monitor and diagnose, with baselines.

Measured, each over ``--trials`` runs of the real service on loopback:
  * start -> healthy of a plain ``python3 main.py`` (the floor of any restart);
  * SIGKILL of the service -> a new process answers health, under the monitor;
  * SIGSTOP of the service -> a new process answers health, under the monitor
    (``--interval 1``, failure threshold 3, probe timeout 1 s: the defaults at that interval);
  * ``python3 diagnose_service.py`` wall time against a healthy and a hung (SIGSTOP) service.
Baselines printed alongside: the detection time of a naive fixed 30 s check and of
Kubernetes' default liveness probe (period 10 s, timeout 1 s, failure threshold 3),
computed, plus the measured start time, since every restart pays it.

Usage: .venv/bin/python bench/bench_ops.py [--trials N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
MAIN, MONITOR, DIAGNOSE = (
    str(ROOT / n) for n in ("main.py", "monitor_service.py", "diagnose_service.py")
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def healthy(port: int) -> bool:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/cotizaciones/health", timeout=0.5)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def until(predicate: Callable[[], object], timeout: float = 120.0) -> float:
    """Poll every 10 ms; return the monotonic time the predicate first held."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)
    return time.monotonic()


class Lab:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'cotiza.db'}",
            "RUN_DIR": str(tmp / "var"),
            "LOG_LEVEL": "WARNING",
        }

    def spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.tmp / "bench.log").open("ab")
        proc = subprocess.Popen(
            argv, cwd=self.tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.procs.append(proc)
        return proc

    def state(self, port: int) -> dict[str, object]:
        try:
            data: dict[str, object] = json.loads(
                (self.tmp / "var" / f"monitor-{port}.json").read_text()
            )
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data

    def ledger(self, port: int) -> list[dict[str, Any]]:
        path = self.tmp / "var" / f"monitor-{port}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    with tempfile.TemporaryDirectory(prefix="bench-ops-") as tmp:
        bench = Lab(Path(tmp))
        try:
            yield bench
        finally:
            bench.close()


def plain_start(bench: Lab) -> float:
    port = free_port()
    started = time.monotonic()
    proc = bench.spawn([PY, MAIN, "--port", str(port)])
    ready = until(lambda: healthy(port))
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    return ready - started


def recovery(bench: Lab, port: int, sig: signal.Signals) -> float:
    """Signal the supervised service; seconds until a *new* process answers health."""
    until(lambda: bench.state(port).get("state") == "RUNNING" and healthy(port))
    # Each trial is a first restart: wait until the monitor has seen a stable run (which
    # resets its backoff), or there was no restart yet.
    until(lambda: settled(bench.ledger(port)))
    old = int(str(bench.state(port)["service_pid"]))
    started, wall = time.monotonic(), time.time()
    os.kill(old, sig)

    def replaced() -> bool:
        pid = bench.state(port).get("service_pid")
        return pid not in (None, old) and healthy(port)

    total = until(replaced) - started
    after = {e["event"]: e["ts"] - wall for e in reversed(bench.ledger(port)) if e["ts"] >= wall}
    print(
        f"          {sig.name}: total {total:5.2f} s = detection {after.get('restart', 0):5.2f}"
        f" + stop and start {after.get('start', 0) - after.get('restart', 0):5.2f}"
        f" + service start-up {total - after.get('start', 0):5.2f}"
    )
    return total


def settled(entries: list[dict[str, Any]]) -> bool:
    if not any(e["event"] == "restart" for e in entries):
        return True
    last_start = max(e["ts"] for e in entries if e["event"] == "start")
    return any(e["event"] == "stable" and e["ts"] >= last_start for e in entries)


def diagnose_time(bench: Lab, port: int) -> tuple[float, int]:
    started = time.monotonic()
    result = subprocess.run(
        [PY, DIAGNOSE, "--port", str(port)], cwd=bench.tmp, env=bench.env,
        capture_output=True, check=False,
    )  # fmt: skip
    return time.monotonic() - started, result.returncode


def summary(values: list[float]) -> str:
    median = statistics.median(values)
    return f"median {median:6.2f} s   min {min(values):6.2f}   max {max(values):6.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    print(f"bench_ops: {args.trials} trials; load average {os.getloadavg()[0]:.1f}")

    with lab() as bench:
        starts = [plain_start(bench) for _ in range(args.trials)]
        print(f"baseline  plain start -> healthy ({PY} main.py)")
        print(f"          {summary(starts)}")

        port = free_port()
        # --max-restarts: every trial is a restart, and the default budget is 3 per window.
        monitor = [PY, MONITOR, "--port", str(port), "--interval", "1", "--stable-after", "2",
                   "--max-restarts", "100", "--run-dir", str(bench.tmp / "var"),
                   "--", PY, MAIN]  # fmt: skip
        print(f"monitor   {' '.join(monitor[1:])}")
        bench.spawn(monitor)
        kills = [recovery(bench, port, signal.SIGKILL) for _ in range(args.trials)]
        print(f"measured  SIGKILL -> healthy new process (target <= 3 s)   {summary(kills)}")
        stops = [recovery(bench, port, signal.SIGSTOP) for _ in range(args.trials)]
        print(f"measured  SIGSTOP -> healthy new process (target <= 8 s)   {summary(stops)}")

        start = statistics.median(starts)
        print(
            "baseline  naive fixed 30 s check, restart on first failure: detection mean 15 s,"
            f" worst 30 s;\n          + start {start:.2f} s = {15 + start:.1f} s mean,"
            f" {30 + start:.1f} s worst"
        )
        print(
            "baseline  Kubernetes default liveness (period 10 s, timeout 1 s, threshold 3):"
            f"\n          detection 21-31 s for a hang; + start ="
            f" {21 + start:.1f}-{31 + start:.1f} s"
        )

    with lab() as bench:
        port = free_port()
        proc = bench.spawn([PY, MAIN, "--port", str(port)])
        until(lambda: healthy(port))
        time.sleep(1.0)  # the feed is delivering: the WebSocket check gets fresh ticks
        runs = [diagnose_time(bench, port) for _ in range(args.trials)]
        print(f"command   {PY} diagnose_service.py --port {port}")
        codes = sorted({r[1] for r in runs})
        print(f"measured  diagnose, healthy (target <= 3 s)  {summary([r[0] for r in runs])}")
        print(f"          exit codes {codes}")
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            runs = [diagnose_time(bench, port) for _ in range(args.trials)]
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        codes = sorted({r[1] for r in runs})
        print(f"measured  diagnose, hung (target <= 12 s)    {summary([r[0] for r in runs])}")
        print(f"          exit codes {codes}")


if __name__ == "__main__":
    main()
