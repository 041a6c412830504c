"""The service as a real subprocess: its environment and its health."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from support.poll import eventually_sync
from support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def service_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PORT", "HOST"}}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path}/cotiza.db", MARKET_HOURS="always")
    env.update(extra)
    return env


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    def healthy() -> bool:
        assert proc.poll() is None, f"service exited with {proc.returncode}"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/cotizaciones/health", timeout=1).is_success
        except httpx.HTTPError:
            return False

    eventually_sync(healthy, timeout, "service healthy", interval=0.1)


@contextlib.contextmanager
def service_process(tmp_path: Path, **env: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``main.py`` as a real subprocess on a free port, healthy; its output goes to
    ``tmp_path / "service.log"``. Stopped at the end, even if the test stopped it (SIGSTOP)."""
    port = free_port()
    log = (tmp_path / "service.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--host", "127.0.0.1", "--port", str(port)],
        env=service_env(tmp_path, **env),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_healthy(port, proc)
        yield proc, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
