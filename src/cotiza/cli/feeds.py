"""Feed tools: ``cotiza fake-primary``, ``cotiza record`` and ``cotiza replay``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import orjson

from cotiza.errors import ConfigurationError, CotizaError, FatalFeedError
from cotiza.logs import configure_logging
from cotiza.models import Quote
from cotiza.settings import LogFormat, Settings, load_settings
from cotiza.tasks import cancel_and_wait


def _run(main: Callable[[asyncio.Event], Coroutine[Any, Any, int]]) -> int:
    """Run ``main`` with an event that SIGINT/SIGTERM set, so it can stop cleanly."""

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    try:
        return asyncio.run(runner())
    except CotizaError as exc:
        print(f"cotiza: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigurationError) else 1


def _settings(**overrides: Any) -> Settings | None:
    try:
        settings = load_settings(**overrides)
    except ConfigurationError as exc:
        print(f"cotiza: {exc}", file=sys.stderr)
        return None
    configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    return settings


# -- fake-primary ---------------------------------------------------------------------


def _parse_users(text: str) -> dict[str, str]:
    users: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        user, sep, password = item.partition(":")
        if not sep or not user:
            raise argparse.ArgumentTypeError(f"expected user:password, got {item!r}")
        users[user] = password
    return users


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _parse_fault(text: str) -> tuple[str, Any]:
    name, _, raw = text.partition("=")
    value: Any = True
    if raw:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = raw
    return name.strip().replace("-", "_"), value


def fake_primary(args: argparse.Namespace) -> int:
    from cotiza.fake_primary import FakePrimary, ReplayEngine, load_instruments, sim_instruments
    from cotiza.fake_primary.engine import MarketEngine, SimEngine

    configure_logging(args.log_level, LogFormat.TEXT)
    source = args.source or ["sim"]
    if source[0] not in ("sim", "replay") or (source[0] == "replay") != (len(source) == 2):
        print("cotiza: --source expects 'sim' or 'replay FILE'", file=sys.stderr)
        return 2
    listed = load_instruments(args.instruments) if args.instruments else None
    engine: MarketEngine
    if source[0] == "replay":
        engine = ReplayEngine(Path(source[1]), speed=args.speed, loop=True)
    else:
        symbols = [i.symbol for i in (listed or sim_instruments())]
        engine = SimEngine(symbols, args.seed, args.rate)

    async def main(stop: asyncio.Event) -> int:
        fake = FakePrimary(
            args.users,
            listed,
            engine,
            host=args.host,
            port=args.port,
            max_sessions_per_user=args.max_sessions_per_user,
            on_excess=args.on_excess,
        )
        try:
            fake.faults.update(dict(args.fault))
        except KeyError as exc:
            print(f"cotiza: unknown fault knob {exc.args[0]!r}", file=sys.stderr)
            return 2
        async with fake:
            print(f"fake Primary on {fake.url} (WebSocket {fake.ws_url})", file=sys.stderr)
            await stop.wait()
        return 0

    return _run(main)


# -- record ---------------------------------------------------------------------------


def record(args: argparse.Namespace) -> int:
    from cotiza.feeds import create_feed
    from cotiza.feeds.recording import FrameRecorder
    from cotiza.feeds.sim import SimFeed

    settings = _settings()
    if settings is None:
        return 2
    instruments = [s.strip() for s in (args.instruments or "").split(",") if s.strip()]

    async def main(stop: asyncio.Event) -> int:
        feed = create_feed(settings)
        recorder = FrameRecorder(
            args.out, settings.record_flush_interval, stop_timeout=settings.shutdown_timeout
        )
        quotes = 0

        def count(_quote: Quote) -> None:
            nonlocal quotes
            quotes += 1

        sink: Callable[[Quote], None] = count
        if isinstance(feed, SimFeed):  # the simulator has no raw frames: record Md frames

            def sink(quote: Quote) -> None:
                count(quote)
                recorder.write_quote(quote)
        else:
            feed.frame_sink = recorder.write
        wanted = instruments or list(settings.feed_instruments) or feed.catalogue()
        await recorder.start()
        task = asyncio.create_task(feed.run(wanted, sink), name=f"record-{feed.name}")
        waiter = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, waiter}, timeout=args.seconds, return_when="FIRST_COMPLETED")
        finally:
            try:  # a fatal feed error is raised here, after the recording is closed
                await cancel_and_wait(waiter, task, timeout=settings.shutdown_timeout)
            finally:
                await recorder.stop()
        print(f"recorded {recorder.frames} frames ({quotes} quotes) to {args.out}", file=sys.stderr)
        return 0

    try:
        return _run(main)
    except FatalFeedError as exc:
        print(f"cotiza: {exc}", file=sys.stderr)
        return 1


# -- replay ---------------------------------------------------------------------------


class ProgressBar:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, total: int, width: int = 30) -> None:
        self.total = max(1, total)
        self.width = width
        self._drawn_at = 0.0

    def update(self, done: int, note: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn_at < 0.1:
            return
        self._drawn_at = now
        fraction = min(1.0, done / self.total)
        filled = int(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        sys.stderr.write(f"\r[{bar}] {fraction * 100:5.1f}% {note:<24}")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def replay(args: argparse.Namespace) -> int:
    settings = _settings(database_url=args.database_url)
    if settings is None:
        return 2
    if not args.file.is_file():
        print(f"cotiza: {args.file} does not exist", file=sys.stderr)
        return 2

    async def main(stop: asyncio.Event) -> int:
        return await import_recording(settings, args.file, args.to_db, stop)

    return _run(main)


async def import_recording(settings: Settings, path: Path, to_db: bool, stop: asyncio.Event) -> int:
    """Parse a recording through the live parse path; with ``to_db``, store its quotes and
    rebuild the ratio history and dashboard aggregates they imply (``storage.rebuild``)."""
    from sqlalchemy import insert

    from cotiza.feeds.base import FeedStats
    from cotiza.feeds.primary_parse import FrameApplier
    from cotiza.feeds.recording import RecordingReader
    from cotiza.ratios import DEFAULT_PAIRS
    from cotiza.storage.database import Database
    from cotiza.storage.rebuild import HistoryRebuilder
    from cotiza.storage.repository import Repository
    from cotiza.storage.tables import ticks
    from cotiza.storage.writer import TickRow, tick_row

    rows: list[TickRow] = []
    symbols: set[str] = set()
    history: HistoryRebuilder | None = None

    def collect(quote: Quote) -> None:
        rows.append(tick_row(quote))
        symbols.add(quote.symbol)
        if history is not None:
            history.on_quote(quote)

    applier = FrameApplier(collect, FeedStats())
    reader = RecordingReader(path)
    progress = ProgressBar(reader.size)
    database = (
        Database(settings.database_url, busy_timeout=settings.sqlite_busy_timeout)
        if to_db
        else None
    )
    stored = 0
    first_ns = last_ns = None
    try:
        if database is not None:
            await database.start()
            repository = Repository(database)
            await repository.seed_pairs(DEFAULT_PAIRS)
            history = HistoryRebuilder(settings, await repository.list_pairs(active_only=True))
        async with contextlib.aclosing(reader.batches()) as batches:
            async for batch in batches:
                for item in batch:
                    # Historical import: the quote keeps the time it was received back then.
                    applier.apply(item.frame, item.recv_ns / 1e9)
                    first_ns = first_ns or item.recv_ns
                    last_ns = item.recv_ns
                if database is not None and history is not None and (rows or history.pending):
                    async with database.engine.begin() as conn:
                        if rows:
                            await conn.execute(insert(ticks), rows)
                        await history.write(conn)
                    stored += len(rows)
                rows.clear()
                progress.update(reader.position, f"{applier.stats.quotes:,} quotes")
                if stop.is_set():
                    break
        done = reader.position if stop.is_set() else reader.size
        progress.update(done, f"{applier.stats.quotes:,} quotes", force=True)
        progress.close()
    finally:
        if database is not None:
            await database.stop()
    stats = applier.stats
    span = (last_ns - first_ns) / 1e9 if first_ns and last_ns else 0.0
    print(
        f"{path}: {stats.frames:,} frames, {stats.quotes:,} quotes, {len(symbols)} symbols, "
        f"{stats.errors:,} errors, {reader.bad_lines:,} unreadable lines, {span:.1f} s recorded"
        + (f"; {stored:,} ticks stored" if to_db else "")
        + (f", {history.stored:,} ratio samples rebuilt" if history is not None else ""),
        file=sys.stderr,
    )
    return 130 if stop.is_set() else 0


def _fake_epilog() -> str:
    """The fake's default users and every fault knob, for ``fake-primary --help``."""
    import dataclasses

    from cotiza.fake_primary.faults import Faults
    from cotiza.fake_primary.server import DEFAULT_USERS

    users = ", ".join(f"{user}:{password}" for user, password in DEFAULT_USERS.items())
    knobs = ", ".join(f"{f.name} (default {f.default!r})" for f in dataclasses.fields(Faults))
    return (
        f"Users (user:password): without --users the fake accepts {users}. "
        f"Fault knobs for --fault KNOB=VALUE (repeatable; JSON values; also POST /_fake/faults "
        f"while running): {knobs}. *_after knobs fire once, on the first connection reaching "
        "N frames."
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from cotiza.fake_primary.server import DEFAULT_USERS

    fake = sub.add_parser(
        "fake-primary",
        help="run a fake Primary API server (tests, demos)",
        description="A local Primary look-alike: REST (auth, instrument list) and WebSocket "
        "market data, simulated or replayed, with fault knobs.",
        epilog=_fake_epilog(),
    )
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=9000, help="port (0 picks a free one)")
    fake.add_argument(
        "--users",
        type=_parse_users,
        default=dict(DEFAULT_USERS),
        metavar="U:P,...",
        help="accepted users, e.g. ana:secret,bob:pw (default: listed below)",
    )
    fake.add_argument("--instruments", type=Path, help="JSON list or text file of symbols")
    fake.add_argument("--source", nargs="+", metavar="sim|replay FILE", help="market engine")
    fake.add_argument("--rate", type=float, default=20.0, help="simulated ticks per second")
    fake.add_argument("--seed", type=int, default=42)
    fake.add_argument("--speed", type=float, default=1.0, help="replay speed (0: fastest)")
    fake.add_argument(
        "--fault",
        type=_parse_fault,
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        help="set a fault knob at start (knobs listed below)",
    )
    fake.add_argument(
        "--max-sessions-per-user",
        type=_positive_int,
        default=None,
        metavar="N",
        help="market-data sessions one user may hold at once, like a broker (default: no limit)",
    )
    fake.add_argument(
        "--on-excess",
        choices=["refuse", "kick-oldest"],
        default="refuse",
        help="one session too many: refuse its handshake (HTTP 429) or close the oldest",
    )
    fake.add_argument("--log-level", default="INFO")
    fake.set_defaults(func=fake_primary)

    rec = sub.add_parser("record", help="record the raw frames of the configured FEED")
    rec.add_argument("--out", type=Path, required=True, help="NDJSON file (.gz to compress)")
    rec.add_argument("--seconds", type=float, default=None, help="stop after this long")
    rec.add_argument("--instruments", default=None, help="comma-separated symbols")
    rec.set_defaults(func=record)

    rep = sub.add_parser("replay", help="read a recording; --to-db imports it into history")
    rep.add_argument("file", type=Path)
    rep.add_argument(
        "--to-db",
        action="store_true",
        help="store the ticks and rebuild ratio history and dashboard aggregates",
    )
    rep.add_argument("--database-url", default=None, help="default DATABASE_URL")
    rep.set_defaults(func=replay)
