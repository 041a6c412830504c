"""Invalid configuration stops start-up: one line naming the variable, exit 2, nothing started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cotiza.errors import ConfigurationError
from cotiza.settings import Settings, load_settings
from cotiza.settings_bounds import BOUNDS

ROOT = Path(__file__).resolve().parents[2]
ENTRY = {
    "main.py": [sys.executable, "main.py"],
    "cotiza-serve": [sys.executable, "-m", "cotiza", "serve"],
}

BAD = [
    ("HOST", "bad host!"),
    ("HOST", "999.1.1.1"),
    ("HOST", "203.0.113.7"),  # a documentation address: not on this machine
    ("FEED_INSTRUMENTS", "NOPE"),
    ("FEED_INSTRUMENTS", "MERV - XMEV - AL30 - 24hs,NOT-A-SYMBOL"),
    ("DATABASE_URL", "sqlite:///{tmp}/a-file/cotiza.db"),  # a path through a regular file
    ("DATABASE_URL", "sqlite:///{tmp}"),  # a directory
    ("RATIO_SAMPLE_INTERVAL", "1e-9"),
    ("RATIO_SAMPLE_INTERVAL", "inf"),
    ("RATIO_SAMPLE_INTERVAL", "-1"),
    ("WEBSOCKET_TIMEOUT", "inf"),
    ("DASHBOARD_REFRESH_INTERVAL", "nan"),
    ("MAX_WEBSOCKET_CONNECTIONS", "-5"),
    ("SIM_TICKS_PER_SECOND", "1e12"),
    ("WRITE_FLUSH_INTERVAL", "1e-12"),
    ("SHUTDOWN_TIMEOUT", "1e300"),
    ("ALLOWED_ORIGINS", "junk"),
    ("ALLOWED_ORIGINS", "https://ok.example,ftp://nope"),
]


def start(entry: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in {"PORT", "HOST"}}
    environment.update(
        DATABASE_URL=f"sqlite:///{tmp_path}/cotiza.db",
        RUN_DIR=str(tmp_path / "run"),
        HOST="127.0.0.1",
        PORT="0",
    )
    environment.update({k: v.format(tmp=tmp_path) for k, v in env.items()})
    return subprocess.run(
        ENTRY[entry],
        check=False,
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_refused(result: subprocess.CompletedProcess[str], variable: str, tmp: Path) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr  # one line, no traceback, no log lines
    assert lines[0].startswith("cotiza: invalid configuration: ")
    assert f" {variable}: " in lines[0], lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp / "cotiza.db").exists()  # nothing started: no database opened
    assert not (tmp / "run").exists()  # nor stack dumps
    return lines[0]


@pytest.mark.subprocess
@pytest.mark.parametrize(("variable", "value"), BAD, ids=[f"{v}={x}" for v, x in BAD])
def test_bad_values_stop_start_up(variable: str, value: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder\n")
    assert_refused(start("main.py", tmp_path, **{variable: value}), variable, tmp_path)


@pytest.mark.subprocess
@pytest.mark.parametrize("entry", sorted(ENTRY))
def test_every_entry_point_refuses_the_same_way(entry: str, tmp_path: Path) -> None:
    result = start(entry, tmp_path, RATIO_SAMPLE_INTERVAL="1e-9")
    assert_refused(result, "RATIO_SAMPLE_INTERVAL", tmp_path)


@pytest.mark.subprocess
@pytest.mark.parametrize("entry", sorted(ENTRY))
def test_a_busy_port_is_refused_naming_its_holder(entry: str, tmp_path: Path) -> None:
    """The port is checked before the database and the feed start; the holder is named."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import socket,sys,time\n"
         "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\n"
         "print(s.getsockname()[1], flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        port = int(holder.stdout.readline())
        started = time.monotonic()
        result = start(entry, tmp_path, PORT=str(port))
        line = assert_refused(result, "PORT", tmp_path)
        assert f"127.0.0.1:{port}" in line and f"pid {holder.pid}" in line, line
        assert time.monotonic() - started < 30
    finally:
        holder.kill()
        holder.wait()


def test_a_free_port_and_good_values_still_start(tmp_path: Path) -> None:
    """The checks do not refuse a correct configuration (the bind probe releases the port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = load_settings(
        host="127.0.0.1",
        port=port,
        database_url=f"sqlite:///{tmp_path}/cotiza.db",
        allowed_origins="https://example.com, http://127.0.0.1:8080",
        feed_instruments="",
    )
    from cotiza.cli.serve import check_bind

    check_bind(settings.host, settings.port)
    assert settings.allowed_origins == ["https://example.com", "http://127.0.0.1:8080"]


NUMERIC = sorted(
    name
    for name, field in Settings.model_fields.items()
    if field.annotation in (int, float, int | None, float | None)
)


def test_every_numeric_setting_has_bounds_that_hold_its_default() -> None:
    assert NUMERIC and set(NUMERIC) <= set(BOUNDS), sorted(set(NUMERIC) - set(BOUNDS))
    for name in NUMERIC:
        default = Settings.model_fields[name].default
        low, high = BOUNDS[name]
        assert default is None or low <= default <= high, name


@pytest.mark.parametrize("name", NUMERIC)
def test_every_numeric_setting_refuses_values_beyond_its_bounds(name: str) -> None:
    low, high = BOUNDS[name]
    for value in (high * 10 + 1, low - 1 if low <= 0 else low / 1000):
        if Settings.model_fields[name].annotation in (int, int | None) and value != int(value):
            continue
        with pytest.raises(ConfigurationError, match=f" {name.upper()}: "):
            load_settings(**{name: value})
    if Settings.model_fields[name].annotation in (float, float | None):
        with pytest.raises(ConfigurationError, match=f" {name.upper()}: "):
            load_settings(**{name: float("inf")})
