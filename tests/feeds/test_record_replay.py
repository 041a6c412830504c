"""Recording raw frames and replaying them through the live parse path."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import math
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from primary_kit import AL30, AL30D, INSTRUMENTS, Collector, LoopProbe, primary_settings, running

from cotiza.cache import QuoteCache
from cotiza.calendar import MarketCalendar
from cotiza.fake_primary import FakePrimary
from cotiza.feeds import create_feed
from cotiza.feeds.base import FeedState
from cotiza.feeds.primary import PrimaryFeed
from cotiza.feeds.primary_frames import md_frame
from cotiza.feeds.recording import GZIP_MAGIC, FrameRecorder
from cotiza.feeds.replay import ReplayFeed
from cotiza.models import Quote, RatioPair
from cotiza.ratios import compute_ratios
from cotiza.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def timeless(quote: Quote) -> Quote:
    """The quote without its local receive time, which differs between runs by nature."""
    return dataclasses.replace(quote, recv_ts=0.0)


def make_cache() -> QuoteCache:
    return QuoteCache(MarketCalendar.from_settings(Settings(market_hours="always")), 60.0)


def replay_settings(path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"feed": "replay", "replay_file": path, "replay_speed": 0.0}
    return Settings(**{**values, **overrides})


async def play(path: Path, instruments: list[str] | None = None, **overrides: object):
    """Replay ``path`` to the end; the feed and the quotes it delivered, in order."""
    feed = ReplayFeed(replay_settings(path, **overrides))
    quotes = Collector()
    await asyncio.wait_for(feed.run(instruments or [], quotes), 30)
    return feed, quotes.quotes


def write_recording(path: Path, frames: list[object], gap_ns: int = 10_000_000) -> None:
    start = time.time_ns()
    lines = [
        orjson.dumps({"recv_ns": start + i * gap_ns, "frame": frame})
        for i, frame in enumerate(frames)
    ]
    data = b"\n".join(lines) + b"\n"
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)


def sim_frames(count: int) -> list[object]:
    feed = create_feed(Settings(sim_seed=3))
    return [md_frame(q) for q in feed.generate(count)]  # type: ignore[attr-defined]


async def record_live(fake: FakePrimary, path: Path) -> tuple[PrimaryFeed, list[Quote], QuoteCache]:
    """Run the adapter against the fake with a recorder on its frame tap; live quotes out."""
    feed = PrimaryFeed(primary_settings(fake))
    recorder = FrameRecorder(path, flush_interval=0.05)
    feed.frame_sink = recorder.write
    cache = make_cache()
    quotes = Collector()

    def sink(quote: Quote) -> None:
        cache.apply(quote)
        quotes(quote)

    await recorder.start()
    async with running(feed, [*INSTRUMENTS, "NOPE"], sink):
        await quotes.wait_count(20)
        fake.inject_malformed()
        fake.inject_unknown_types(2)
        fake.faults.empty_books = True
        await quotes.wait_until(lambda: quotes.quotes[-1].bid is None)
        fake.faults.empty_books = False
        count = len(quotes.items)
        await quotes.wait_count(count + 20)
    await recorder.stop()
    return feed, quotes.quotes, cache


@pytest.mark.live
@pytest.mark.parametrize("name", ["live.ndjson", "live.ndjson.gz"])
async def test_record_then_replay_reproduces_the_live_quotes(
    fake: FakePrimary, tmp_path: Path, name: str
) -> None:
    """Replaying a live recording yields the same quotes, cache states, ratios and counters."""
    path = tmp_path / name
    live_feed, live_quotes, live_cache = await record_live(fake, path)
    assert (path.read_bytes()[:2] == GZIP_MAGIC) is name.endswith(".gz")

    replay_cache = make_cache()
    feed = ReplayFeed(replay_settings(path))
    replayed = Collector()

    def sink(quote: Quote) -> None:
        replay_cache.apply(quote)
        replayed(quote)

    await asyncio.wait_for(feed.run([], sink), 30)
    assert [timeless(q) for q in replayed.quotes] == [timeless(q) for q in live_quotes]
    assert {s: timeless(q) for s, q in ((q.symbol, q) for q in replay_cache.all())} == {
        q.symbol: timeless(q) for q in live_cache.all()
    }
    pair = RatioPair(1, AL30, AL30D)
    now = time.time()
    live_ratio = compute_ratios(pair, live_cache.get(AL30), live_cache.get(AL30D), now, math.inf)
    replay_ratio = compute_ratios(
        pair, replay_cache.get(AL30), replay_cache.get(AL30D), now, math.inf
    )
    assert live_ratio == replay_ratio
    # Frames the live adapter took while stopping may be newer than the last quote it kept.
    assert feed.stats.quotes == live_feed.stats.quotes
    for key in ("malformed", "ignored", "server_errors"):
        assert feed.stats.extra[key] == live_feed.stats.extra[key], key
    assert feed.state is FeedState.STOPPED


async def test_gzip_is_detected_by_its_magic_bytes_not_its_name(tmp_path: Path) -> None:
    """A compressed recording named .ndjson and a plain one named .gz both replay."""
    frames = sim_frames(50)
    plain = tmp_path / "frames.gz.txt"
    write_recording(plain, frames)
    packed = tmp_path / "frames.ndjson"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    _, from_plain = await play(plain)
    _, from_packed = await play(packed)
    assert len(from_plain) == 50
    assert [timeless(q) for q in from_packed] == [timeless(q) for q in from_plain]


async def test_speed_one_keeps_the_recorded_pace_and_zero_goes_flat_out(tmp_path: Path) -> None:
    """Speed 1 takes the recorded 0.5 s, speed 2 half of it, speed 0 almost nothing."""
    path = tmp_path / "paced.ndjson"
    write_recording(path, sim_frames(51), gap_ns=10_000_000)
    elapsed = {}
    for speed in (1.0, 2.0, 0.0):
        started = time.monotonic()
        _, quotes = await play(path, replay_speed=speed)
        elapsed[speed] = time.monotonic() - started
        assert len(quotes) == 51
    assert 0.5 <= elapsed[1.0] < 1.5
    assert 0.25 <= elapsed[2.0] < elapsed[1.0]
    assert elapsed[0.0] < 0.25


async def test_speed_zero_yields_to_the_loop_on_a_large_file(tmp_path: Path) -> None:
    """Twenty thousand frames at full speed never block a concurrent ticker for 200 ms."""
    path = tmp_path / "large.ndjson.gz"
    write_recording(path, sim_frames(20_000), gap_ns=1000)
    probe = LoopProbe()
    _, quotes = await play(path, replay_yield_every=200)
    await probe.stop()
    assert len(quotes) == 20_000
    assert probe.worst < 0.2, probe.worst
    assert probe.beats > 0


async def test_replay_loop_starts_over_until_cancelled(tmp_path: Path) -> None:
    """With REPLAY_LOOP the file plays again and again until the task is cancelled."""
    path = tmp_path / "loop.ndjson"
    write_recording(path, sim_frames(30))
    feed = ReplayFeed(replay_settings(path, replay_loop=True))
    quotes = Collector()
    task = asyncio.create_task(feed.run([], quotes))
    await quotes.wait_count(100)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert feed.stats.extra["loops"] >= 3
    assert feed.state is FeedState.STOPPED
    assert quotes.quotes[30].symbol == quotes.quotes[0].symbol


async def test_instrument_filter_and_broken_lines(tmp_path: Path) -> None:
    """Only the requested symbols come out; unreadable lines are skipped and counted."""
    path = tmp_path / "mixed.ndjson"
    write_recording(path, sim_frames(200))
    with path.open("ab") as handle:
        handle.write(b'not json\n\n{"recv_ns": "x"}\n')
    feed, quotes = await play(path, [AL30])
    assert quotes and {q.symbol for q in quotes} == {AL30}
    assert feed.stats.frames == 200
    assert feed.stats.errors == 2


async def test_missing_replay_file_is_fatal(tmp_path: Path) -> None:
    """A REPLAY_FILE that does not exist stops the feed with a clear error."""
    from cotiza.errors import FatalFeedError

    feed = ReplayFeed(replay_settings(tmp_path / "absent.ndjson"))
    with pytest.raises(FatalFeedError, match="does not exist"):
        await feed.run([], Collector())
    assert feed.state is FeedState.FAILED


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cotiza", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "LOG_LEVEL": "WARNING", **env},
        check=False,
    )


@pytest.mark.subprocess
async def test_cli_records_the_simulator_and_imports_the_recording(tmp_path: Path) -> None:
    """`cotiza record` writes the simulator's quotes as Md frames; `replay --to-db` stores them."""
    out = tmp_path / "sim.ndjson.gz"
    env = {"FEED": "sim", "SIM_TICKS_PER_SECOND": "400", "DATABASE_URL": "sqlite:///unused.db"}
    done = await asyncio.to_thread(run_cli, "record", "--out", str(out), "--seconds", "1", env=env)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:2] == GZIP_MAGIC
    _, quotes = await play(out)
    assert len(quotes) > 100

    database = tmp_path / "history.db"
    env = {"DATABASE_URL": f"sqlite:///{database}"}
    done = await asyncio.to_thread(run_cli, "replay", str(out), "--to-db", env=env)
    assert done.returncode == 0, done.stderr
    assert "100.0%" in done.stderr and f"{len(quotes):,} ticks stored" in done.stderr
    with sqlite3.connect(database) as conn:
        (count,) = conn.execute("SELECT count(*) FROM ticks").fetchone()
        symbol, bid = conn.execute("SELECT symbol, bid FROM ticks ORDER BY id LIMIT 1").fetchone()
    assert count == len(quotes)
    assert (symbol, bid) == (quotes[0].symbol, quotes[0].bid)


@pytest.mark.subprocess
async def test_cli_records_the_primary_feed_raw_frames(fake: FakePrimary, tmp_path: Path) -> None:
    """`cotiza record` with FEED=primary writes the frames exactly as the fake sent them."""
    out = tmp_path / "primary.ndjson"
    env = {
        "FEED": "primary",
        "PRIMARY_ENV": fake.url,
        "PRIMARY_USER": "user",
        "PRIMARY_PASSWORD": "password",
        "FEED_INSTRUMENTS": f"{AL30},NOPE",
    }
    done = await asyncio.to_thread(run_cli, "record", "--out", str(out), "--seconds", "1", env=env)
    assert done.returncode == 0, done.stderr
    assert "password" not in done.stderr
    frames = [orjson.loads(line)["frame"] for line in out.read_bytes().splitlines()]
    assert frames and all(isinstance(f, dict) for f in frames)
    assert {
        "status": "ERROR",
        "description": "Product NOPE:ROFX doesn't exist",
        "message": None,
    } in (frames)
    assert any(f.get("type") == "Md" and f["instrumentId"]["symbol"] == AL30 for f in frames)


def test_registry_builds_replay_and_primary_feeds(tmp_path: Path) -> None:
    """FEED=replay and FEED=primary are registered strategies."""
    assert isinstance(create_feed(replay_settings(tmp_path / "x.ndjson")), ReplayFeed)
    primary = Settings(feed="primary", primary_user="u", primary_password="p")
    assert isinstance(create_feed(primary), PrimaryFeed)
