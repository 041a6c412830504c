"""Helpers for the operations tests: real processes, polling with deadlines, cleanup."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import psutil
from support.poll import eventually_sync

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
MAIN = str(ROOT / "main.py")
MONITOR = str(ROOT / "monitor_service.py")
DIAGNOSE = str(ROOT / "diagnose_service.py")
FIXTURE = str(Path(__file__).resolve().parent / "fixture_service.py")
TAG = "COTIZA_OPS_TEST_TAG"

# Service settings that make the real service quick to judge.
FAST_SERVICE = {
    "HOST": "127.0.0.1",
    "COTIZA_ENV": "test",
    "DEBUG_FAULTS": "1",
    "MARKET_HOURS": "always",
    "SIM_TICKS_PER_SECOND": "50",
    "LOOP_LAG_INTERVAL": "0.05",
    # A loaded CI machine can stall a healthy loop for a second: only longer stalls fail.
    "LOOP_LAG_FAIL": "2.5",
    "RATIO_SAMPLE_INTERVAL": "0.2",
    "SHUTDOWN_TIMEOUT": "2",
    "LOG_LEVEL": "WARNING",
}

# Monitor timings for tests: fractions of a second.
FAST_MONITOR = [
    "--interval", "0.3",
    "--failure-threshold", "3",
    "--probe-timeout", "1",
    "--canary-window", "1.5",
    "--startup-budget", "40",
    "--startup-poll", "0.1",
    "--term-grace", "2",
    "--backoff-base", "0.2",
    "--backoff-cap", "1",
    "--restart-window", "120",
    "--stable-after", "2",
    "--giveup-interval", "3",
]  # fmt: skip


def get(port: int, path: str, timeout: float = 1.0) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=timeout)
    except httpx.HTTPError:
        return None


def post(port: int, path: str, timeout: float = 2.0) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{port}{path}", timeout=timeout)


def healthy(port: int, timeout: float = 1.0) -> bool:
    response = get(port, "/cotizaciones/health", timeout)
    return response is not None and response.status_code == 200


def pid_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Harness:
    """Starts real processes for one test and kills every one of them afterwards."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.run_dir = tmp / "var"
        self.tag = uuid.uuid4().hex
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "ALERT_"))}
        env.update(FAST_SERVICE)
        env["DATABASE_URL"] = f"sqlite+aiosqlite:///{self.tmp / 'cotiza.db'}"
        env["RUN_DIR"] = str(self.run_dir)
        env[TAG] = self.tag
        env.update(extra)
        return env

    def spawn(self, argv: list[str], name: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            cwd=self.tmp,
            env=self.env(**env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def service(self, port: int, **env: str) -> subprocess.Popen[bytes]:
        return self.spawn([PY, MAIN, "--port", str(port)], f"service-{port}", **env)

    def monitor(
        self, port: int, *flags: str, command: Iterable[str] | None = None, **env: str
    ) -> subprocess.Popen[bytes]:
        argv = [PY, MONITOR, "--port", str(port), "--run-dir", str(self.run_dir)]
        argv += [*FAST_MONITOR, *flags]
        if command is not None:
            argv += ["--", *command]
        else:
            argv += ["--", PY, MAIN]
        return self.spawn(argv, f"monitor-{port}", **env)

    def fixture_command(self, *flags: str) -> list[str]:
        return [PY, FIXTURE, *flags]

    def cli(self, *argv: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PY, *argv], cwd=self.tmp, env=self.env(**env), capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def ledger(self, port: int) -> list[dict[str, Any]]:
        path = self.run_dir / f"monitor-{port}.jsonl"
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in lines:
            with contextlib.suppress(json.JSONDecodeError):
                entries.append(json.loads(line))
        return entries

    def events(self, port: int, *names: str, since: float = 0.0) -> list[dict[str, Any]]:
        return [e for e in self.ledger(port) if e["event"] in names and e["ts"] >= since]

    def state(self, port: int) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.run_dir / f"monitor-{port}.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data

    def service_pid(self, port: int) -> int | None:
        state = self.state(port)
        return state.get("service_pid") if state and state.get("state") == "RUNNING" else None

    def wait_running(self, port: int, timeout: float = 60) -> int:
        """Wait until the monitor reports RUNNING and the service answers; return its pid."""
        pid: int = eventually_sync(
            lambda: self.service_pid(port) if healthy(port) else None, timeout, "RUNNING"
        )
        return pid

    def service_processes(self, port: int) -> list[int]:
        """Pids of every real service process for ``port`` that this harness started."""
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                env = proc.environ()
                ours = env.get(TAG) == self.tag and env.get("PORT") == str(port)
                if ours and (proc.info["cmdline"] or [])[1:2] == [MAIN]:
                    found.append(proc.pid)
        return found

    def new_start(self, port: int, old: int, timeout: float = 20, since: float = 0.0) -> int:
        """Wait for the monitor to start a process other than ``old``; return its pid."""
        pid: int = eventually_sync(
            lambda: next(
                (e["pid"] for e in self.events(port, "start", since=since) if e["pid"] != old), None
            ),
            timeout,
            "a new start",
        )
        return pid

    def output(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cleanup(self) -> None:
        """SIGKILL every process group we started and every process carrying our tag."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        tagged = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if proc.environ().get(TAG) == self.tag:
                    tagged.append(proc)
        for proc in tagged:
            with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(tagged, timeout=5)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


class Recorder:
    """A local HTTP server that records every request it receives (alert receivers).

    ``behaviour`` is ``ok`` (200), ``fail`` (500) or ``slow`` (answers after 30 s).
    """

    def __init__(self, behaviour: str = "ok") -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[tuple[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.requests.append((self.path, json.loads(body or b"null")))
                if behaviour == "slow":
                    time.sleep(30)
                code = 500 if behaviour == "fail" else 200
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bodies(self, path_part: str) -> list[Any]:
        return [body for path, body in self.requests if path_part in path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
