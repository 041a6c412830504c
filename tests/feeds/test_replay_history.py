"""``cotiza replay FILE --to-db`` rebuilds ratio history and the dashboard aggregates."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 0.5


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cotiza", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "LOG_LEVEL": "WARNING", **env},
        check=False,
    )


def recorded_span(path: Path) -> tuple[float, float]:
    with gzip.open(path, "rt") as lines:
        stamps = [json.loads(line)["recv_ns"] / 1e9 for line in lines if line.strip()]
    return min(stamps), max(stamps)


def test_replay_to_db_rebuilds_samples_and_aggregates(tmp_path: Path) -> None:
    out = tmp_path / "day.ndjson.gz"
    recorded = cli(
        "record",
        "--out",
        str(out),
        "--seconds",
        "4",
        FEED="sim",
        SIM_TICKS_PER_SECOND="200",
        MARKET_HOURS="always",
        DATABASE_URL=f"sqlite:///{tmp_path}/unused.db",
    )
    assert recorded.returncode == 0, recorded.stderr
    first, last = recorded_span(out)
    assert last - first > 2

    database = tmp_path / "history.db"
    done = cli(
        "replay",
        str(out),
        "--to-db",
        DATABASE_URL=f"sqlite:///{database}",
        RATIO_SAMPLE_INTERVAL=str(INTERVAL),
        MARKET_HOURS="always",
    )
    assert done.returncode == 0, done.stderr
    assert "ratio samples" in done.stderr, done.stderr
    with sqlite3.connect(database) as conn:
        pairs = conn.execute("SELECT count(*) FROM ratio_pairs WHERE active").fetchone()[0]
        per_pair = dict(
            conn.execute("SELECT pair_id, count(*) FROM ratio_samples GROUP BY pair_id")
        )
        span = conn.execute("SELECT min(asof), max(asof) FROM ratio_samples").fetchone()
        minutes = conn.execute("SELECT count(*) FROM ratio_minutes").fetchone()[0]
        days = conn.execute("SELECT count(*) FROM ratio_days").fetchone()[0]
    assert pairs > 0 and per_pair, "no ratio history rebuilt"
    due = (last - first) / INTERVAL
    assert max(per_pair.values()) >= due * 0.6, (per_pair, due)
    assert first <= span[0] and span[1] <= last + INTERVAL  # recorded time, not import time
    assert minutes > 0 and days > 0  # the dashboard's aggregates

    again = cli(
        "replay",
        str(out),
        "--to-db",
        DATABASE_URL=f"sqlite:///{database}",
        RATIO_SAMPLE_INTERVAL=str(INTERVAL),
        MARKET_HOURS="always",
    )
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(database) as conn:
        total = conn.execute("SELECT count(*) FROM ratio_samples").fetchone()[0]
    assert total == sum(per_pair.values())  # importing twice does not double the history
