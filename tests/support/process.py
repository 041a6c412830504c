"""The service as a real subprocess: its environment and its health."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from support.poll import eventually_sync


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
