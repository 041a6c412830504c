"""``diagnose``'s database check: reachable, schema revision, newest stored sample.

It reads ``DATABASE_URL`` like the service but talks to the database with the plain
drivers (``sqlite3``, ``asyncpg``), read-only, and finds the expected revision by reading
the bundled migration files: importing SQLAlchemy and Alembic would cost diagnose more
than a second of start-up on a small machine.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from cotiza.diagnose.findings import Finding, Level
from cotiza.settings import redact_url

VERSIONS = Path(__file__).resolve().parents[1] / "storage" / "migrations" / "versions"
_REVISION = re.compile(r'^revision(?:: [^=]+)? = ["\']([^"\']+)["\']', re.MULTILINE)
_DOWN = re.compile(r'^down_revision(?:: [^=]+)? = ["\']([^"\']+)["\']', re.MULTILINE)

_QUERIES = (
    "SELECT version_num FROM alembic_version",
    "SELECT max(asof) FROM ratio_samples",
    "SELECT max(recv_ts) FROM ticks",
)


def head_revision(versions: Path = VERSIONS) -> str | None:
    """The revision no other migration builds on (Alembic's head), from the files."""
    revisions, parents = set(), set()
    for path in versions.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revisions.update(_REVISION.findall(text))
        parents.update(_DOWN.findall(text))
    heads = sorted(revisions - parents)
    return heads[-1] if heads else None


class DatabaseData(TypedDict):
    url: str  # the password masked
    latency_ms: float
    revision: str | None
    expected_revision: str | None
    newest_sample_age_s: float | None
    newest_tick_age_s: float | None


@dataclass(frozen=True)
class Probe:
    latency: float
    revision: str | None
    newest_sample: float | None
    newest_tick: float | None


def _sqlite(path: str, timeout: float) -> Probe:
    started = time.perf_counter()
    # Read-only: diagnose must never create or migrate the file.
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout) as db:
        db.execute("SELECT 1").fetchone()
        latency = time.perf_counter() - started
        values: list[Any] = []
        for query in _QUERIES:
            try:
                values.append(db.execute(query).fetchone()[0])
            except sqlite3.OperationalError:
                values.append(None)  # a table that does not exist yet
    return Probe(latency, *values)


async def _postgres(dsn: str, timeout: float) -> Probe:
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

    started = time.perf_counter()
    conn = await asyncpg.connect(dsn, timeout=timeout)
    try:
        await conn.fetchval("SELECT 1")
        latency = time.perf_counter() - started
        values: list[Any] = []
        for query in _QUERIES:
            try:
                values.append(await conn.fetchval(query))
            except asyncpg.UndefinedTableError:
                values.append(None)
    finally:
        await conn.close()
    return Probe(latency, *values)


def _sqlite_path(url: str) -> str:
    rest = url.split("://", 1)[1]
    return rest[1:] if rest.startswith("/") else rest


async def database(
    url: str,
    timeout: float,
    market_open: bool,
    interval: float,
    started_at: float | None = None,
) -> Finding:
    """Reachable, at the expected schema revision, and how old the newest sample is."""
    shown = redact_url(url)
    try:
        async with asyncio.timeout(timeout):
            if url.startswith("sqlite"):
                path = _sqlite_path(url)
                if path in ("", ":memory:"):
                    return Finding("database", Level.SKIP, "skipped: an in-memory database")
                if not Path(path).exists():  # noqa: ASYNC240 - one stat; must not create it
                    hint = "the service creates and migrates it at its first start"
                    return Finding("database", Level.WARN, f"{path} does not exist", [], hint)
                probe = await asyncio.to_thread(_sqlite, path, timeout)
            else:
                probe = await _postgres("postgresql://" + url.split("://", 1)[1], timeout)
    except TimeoutError:
        hint = "check that the database server is up and DATABASE_URL points to it"
        return Finding("database", Level.CRIT, f"{shown}: no answer within {timeout:g} s", [], hint)
    except Exception as exc:  # driver errors differ per database; each one is a finding
        detail = redact_url(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        hint = "check DATABASE_URL, credentials and that the server accepts connections"
        summary = f"{shown}: {type(exc).__name__}: {detail}"[:300]
        return Finding("database", Level.CRIT, summary, [], hint)
    return _judge(shown, probe, head_revision(), market_open, interval, started_at)


def _judge(
    shown: str,
    probe: Probe,
    expected: str | None,
    market_open: bool,
    interval: float,
    started_at: float | None = None,
) -> Finding:
    now = time.time()
    newest, tick = probe.newest_sample, probe.newest_tick
    data: DatabaseData = {
        "url": shown,
        "latency_ms": round(probe.latency * 1000, 1),
        "revision": probe.revision,
        "expected_revision": expected,
        "newest_sample_age_s": None if newest is None else round(now - float(newest), 1),
        "newest_tick_age_s": None if tick is None else round(now - float(tick), 1),
    }
    head = f"{shown} reachable in {probe.latency * 1000:.0f} ms, revision {probe.revision}"
    if probe.revision != expected:
        hint = "start the service once (it migrates at start-up) or run alembic upgrade head"
        return Finding("database", Level.CRIT, f"{head}, expected {expected}", [], hint, data)
    if newest is None:
        summary = f"{head}; no ratio samples stored yet"
        # A service that started less than two sampling intervals ago has not had to.
        if started_at is not None and now - started_at < 2 * interval + 60:
            summary += f" (the service started {now - started_at:.0f} s ago)"
            return Finding("database", Level.OK, summary, [], None, data)
        return Finding("database", Level.WARN, summary, [], None, data)
    age = now - float(newest)
    summary = f"{head}; newest ratio sample {age:.0f} s old"
    if market_open and age > max(60.0, 6 * interval):
        hint = "ratio sampling stalled: see feed:staleness and database:writes in /health/detailed"
        return Finding("database", Level.WARN, summary, [], hint, data)
    return Finding("database", Level.OK, summary, [], None, data)
