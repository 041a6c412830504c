"""README's fake-Primary demo works as written: the documented commands, run for real."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cotiza.fake_primary.faults import Faults

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def documented(pattern: str) -> str:
    """The README's command (inside backticks) that matches ``pattern``."""
    commands = [c for c in re.findall(r"`([^`\n]+)`", README) if re.search(pattern, c)]
    assert commands, f"README documents no command matching {pattern!r}"
    return commands[0]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PORT", "HOST"}}
    for name in list(env):
        if name.startswith(("PRIMARY_", "FEED", "REPLAY_", "DATABASE_URL")):
            del env[name]
    return env


def split_env(command: str) -> tuple[dict[str, str], list[str]]:
    """``A=1 B=2 cmd args`` as ({A: 1, B: 2}, [cmd, args])."""
    words = shlex.split(command)
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words


@pytest.fixture
def fake_primary(tmp_path: Path) -> Iterator[int]:
    """``cotiza fake-primary --port P`` exactly as the README starts it (another port)."""
    command = documented(r"^cotiza fake-primary --port \d+$")
    port = free_port()
    argv = [sys.executable, "-m", *shlex.split(command)]
    argv[argv.index("--port") + 1] = str(port)
    log = tmp_path / "fake.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=clean_env(), stderr=out)
    try:
        deadline = time.monotonic() + 30
        while "fake Primary on" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        assert "fake Primary on" in log.read_text()
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def demo_env(fake_port: int, tmp_path: Path) -> tuple[dict[str, str], list[str]]:
    variables, words = split_env(documented(r"FEED=primary .*scripts/dev serve"))
    assert variables["PRIMARY_ENV"].startswith("http://127.0.0.1:")
    variables["PRIMARY_ENV"] = f"http://127.0.0.1:{fake_port}/"
    env = clean_env()
    env.update(variables, DATABASE_URL=f"sqlite:///{tmp_path}/cotiza.db", MARKET_HOURS="always")
    env["RUN_DIR"] = str(tmp_path / "run")
    return env, words


def test_the_demo_service_subscribes_to_the_whole_catalogue(
    fake_primary: int, tmp_path: Path
) -> None:
    """README's serve command with its user and password: quotes for every listed symbol."""
    env, words = demo_env(fake_primary, tmp_path)
    assert "FEED_INSTRUMENTS" not in env
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        ["bash", *words, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        catalogue = httpx.post(
            f"http://127.0.0.1:{fake_primary}/auth/getToken",
            headers={"X-Username": env["PRIMARY_USER"], "X-Password": env["PRIMARY_PASSWORD"]},
            timeout=10,
        )
        assert catalogue.status_code == 200, "the fake refuses README's user and password"
        listed = httpx.get(
            f"http://127.0.0.1:{fake_primary}/rest/instruments/all",
            headers={"X-Auth-Token": catalogue.headers["X-Auth-Token"]},
            timeout=10,
        ).json()["instruments"]
        symbols = {item["instrumentId"]["symbol"] for item in listed}
        assert len(symbols) > 5
        deadline = time.monotonic() + 90
        seen: set[str] = set()
        while time.monotonic() < deadline and seen != symbols:
            try:
                answer = httpx.get(f"{base}/api/quotes", timeout=5)
                if answer.status_code == 200:
                    seen = {q["symbol"] for q in answer.json()["quotes"]} & symbols
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert seen == symbols, (tmp_path / "serve.log").read_text()[-3000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()


def test_cotiza_record_records_frames_of_the_demo_feed(fake_primary: int, tmp_path: Path) -> None:
    """``cotiza record`` with the demo's settings and no FEED_INSTRUMENTS records frames."""
    env, _ = demo_env(fake_primary, tmp_path)
    words = shlex.split(documented(r"^cotiza record --out "))
    out = tmp_path / "day.ndjson.gz"
    words[words.index("--out") + 1] = str(out)
    result = subprocess.run(
        [sys.executable, "-m", *words, "--seconds", "4"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    frames = int(re.search(r"recorded (\d+) frames", result.stderr).group(1))  # type: ignore[union-attr]
    assert frames > 10, result.stderr
    assert out.stat().st_size > 0


def test_fake_primary_help_lists_users_and_fault_knobs() -> None:
    """``cotiza fake-primary --help`` names the default user and every fault knob."""
    result = subprocess.run(
        [sys.executable, "-m", "cotiza", "fake-primary", "--help"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    env, _ = split_env(documented(r"FEED=primary .*scripts/dev serve"))
    assert f"{env['PRIMARY_USER']}:{env['PRIMARY_PASSWORD']}" in text
    for knob in Faults.__dataclass_fields__:
        assert knob in text, knob
