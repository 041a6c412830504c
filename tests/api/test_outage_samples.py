"""A short database outage: samples due meanwhile are kept and written, health recovers."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from support.poll import eventually
from support.server import live_service
from support.settings import fast_settings

from cotiza.settings import Settings

pytestmark = pytest.mark.live

INTERVAL = 0.2
OUTAGE = 3.0


def outage_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return fast_settings(
        tmp_path,
        ratio_sample_interval=INTERVAL,
        write_queue_size=20,  # a tick flood fills it at once during the outage
        write_batch_size=5,
        sqlite_busy_timeout=0.05,
        write_retry_base=0.05,
        write_retry_max=0.2,
        write_drop_window=1.0,
        loop_lag_warn=5.0,
        loop_lag_fail=10.0,
        **overrides,
    )


def take_the_write_lock(path: Path) -> sqlite3.Connection:
    """Hold SQLite's write lock from another connection: every other writer fails (an outage).

    The service writes often, so grabbing the lock may take a few tries; run it in a thread
    (the service shares the test's event loop)."""
    deadline = time.monotonic() + 30
    while True:
        lock = sqlite3.connect(path, isolation_level=None, timeout=0.5, check_same_thread=False)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            return lock
        except sqlite3.OperationalError:
            lock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def writes_check(body: dict[str, Any]) -> dict[str, Any]:
    return dict(body["checks"]["database:writes"][0])


async def test_samples_due_during_an_outage_are_written_when_it_ends(tmp_path: Path) -> None:
    settings = outage_settings(tmp_path)
    path = tmp_path / "cotiza.db"
    async with live_service(settings) as live, live.http() as http:
        writer = live.services.writer
        await eventually(lambda: writer.stats.written_samples > 0, timeout=20, message="samples")
        lock = await asyncio.to_thread(take_the_write_lock, path)
        started = time.time()
        try:
            await eventually(
                lambda: writer.stats.consecutive_failures > 0 and writer.stats.dropped_ticks > 0,
                timeout=20,
                message="writes failing",
            )
            await asyncio.sleep(OUTAGE)
            during = writes_check((await http.get("/health/detailed")).json())
            assert during["status"] != "pass"
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        ended = time.time()
        await eventually(
            lambda: writer.stats.consecutive_failures == 0 and writer.stats.pending == 0,
            timeout=30,
            message="writes recovered",
        )

        async def writes_pass() -> bool:
            body = (await http.get("/health/detailed")).json()
            return bool(writes_check(body)["status"] == "pass")

        # A recent window, not a lifetime counter: the drops age out and health recovers.
        await eventually(writes_pass, timeout=15, message="database:writes back to pass")
        assert writer.stats.dropped_ticks > 0  # the lifetime counter is still there

    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT pair_id, COUNT(*) FROM ratio_samples "
            "WHERE asof > ? AND asof < ? GROUP BY pair_id",
            (started + 0.5, ended - 0.5),
        ).fetchall()
    due = (ended - started - 1.0) / INTERVAL
    assert rows, "no sample of the outage was written"
    for pair_id, count in rows:
        assert count >= due * 0.5, (pair_id, count, due)  # generous: a loaded machine


async def test_the_outage_buffer_is_bounded(tmp_path: Path) -> None:
    """Past WRITE_SAMPLE_BUFFER the oldest samples go, counted; memory stays bounded."""
    settings = outage_settings(tmp_path, write_sample_buffer=10)
    path = tmp_path / "cotiza.db"
    async with live_service(settings) as live:
        writer = live.services.writer
        await eventually(lambda: writer.stats.written_samples > 0, timeout=20, message="samples")
        lock = await asyncio.to_thread(take_the_write_lock, path)
        try:
            await eventually(
                lambda: writer.stats.dropped_samples > 0, timeout=30, message="buffer overflow"
            )
            stats = writer.stats
            assert stats.buffered_samples <= 10
            assert stats.pending <= settings.write_queue_size + 10 + settings.write_batch_size
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        await eventually(lambda: writer.stats.pending == 0, timeout=30, message="drained")
