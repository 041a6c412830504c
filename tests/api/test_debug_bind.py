"""DEBUG_FAULTS judges the sockets the server really binds, not the HOST setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.ports import free_port
from support.process import service_env, wait_healthy

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("bind", "allowed"), [("0.0.0.0", False), ("127.0.0.1", True)])
def test_fault_routes_follow_the_bound_sockets(tmp_path: Path, bind: str, allowed: bool) -> None:
    """HOST=127.0.0.1 passes the settings; ``uvicorn --host 0.0.0.0`` still binds every
    interface: the fault routes must then stay shut, and the log says why."""
    port = free_port()
    env = service_env(tmp_path, HOST="127.0.0.1", COTIZA_ENV="test", DEBUG_FAULTS="1")
    log_path = tmp_path / "service.log"
    argv = [sys.executable, "-m", "uvicorn", "main:app", "--host", bind, "--port", str(port)]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_healthy(port, proc)
            response = httpx.post(f"http://127.0.0.1:{port}/debug/ws-ticks/stop", timeout=5)
            if allowed:
                assert response.status_code == 200, response.text
            else:
                assert response.status_code == 404, response.text
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    output = log_path.read_text()
    refused = [line for line in output.splitlines() if "DEBUG_FAULTS" in line]
    if allowed:
        assert not refused, refused
    else:
        assert len(refused) == 1 and "0.0.0.0" in refused[0], output
