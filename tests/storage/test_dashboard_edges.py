"""Dashboard rows exact at every window edge, against an independent reference.

Each scenario stores a month of samples through the writer (so the aggregates are the
real ones), with dense 10-second data and probes on, just before and just after every
window edge, then compares the service's dashboard query with ``dashboard_reference``
field by field, and each window's count, sum, minimum and maximum with the raw samples.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest
from dashboard_reference import (
    DAY,
    Clock,
    reference_row,
    reference_windows,
    row_mismatches,
    values_in,
)

from cotiza.calendar import MarketCalendar
from cotiza.dashboard import dashboard_windows
from cotiza.dashboard_worker import DashboardQuery
from cotiza.models import RatioPair, RatioSample
from cotiza.settings import Settings
from cotiza.storage.database import Database
from cotiza.storage.repository import Repository
from cotiza.storage.writer import Writer

BUENOS_AIRES = ZoneInfo("America/Argentina/Buenos_Aires")
CAIRO = ZoneInfo("Africa/Cairo")  # DST from the last Friday of April: a 23-hour Friday


def byma(ticker: str) -> str:
    return f"MERV - XMEV - {ticker} - 24hs"


def local(tz: ZoneInfo, *args: int, micro: int = 0) -> float:
    return dt.datetime(*args, microsecond=micro, tzinfo=tz).timestamp()


@dataclass(frozen=True)
class Scenario:
    name: str
    clock: Clock
    field: str


SCENARIOS = [
    # Wednesday afternoon: previous business day Tuesday.
    Scenario(
        "weekday",
        Clock(local(BUENOS_AIRES, 2025, 6, 11, 15, 37, 23, micro=400_000), BUENOS_AIRES),
        "mid_ratio",
    ),
    # Tuesday after a Monday holiday: Friday; the fallback (Sunday to Monday) is all weekend.
    Scenario(
        "after_holiday",
        Clock(
            local(BUENOS_AIRES, 2025, 6, 17, 11, 5, 42, micro=750_000),
            BUENOS_AIRES,
            frozenset({dt.date(2025, 6, 16)}),
        ),
        "mid_ratio",
    ),
    # 22:48 local on Thursday is already Friday in UTC; RATIO_FIELD=last_ratio.
    Scenario(
        "evening_last_ratio",
        Clock(local(BUENOS_AIRES, 2025, 6, 12, 22, 48, 9, micro=900_000), BUENOS_AIRES),
        "last_ratio",
    ),
    # Monday in Cairo: previous business day Friday 2024-04-26, 23 hours long (DST).
    Scenario(
        "dst_23_hour_day",
        Clock(local(CAIRO, 2024, 4, 29, 9, 31, 17, micro=600_000), CAIRO),
        "mid_ratio",
    ),
]

# Pairs of every scenario: full history; full except the previous business day (so the
# 24-48 h fallback applies); created 25 minutes ago; never sampled.
PAIRS = {
    "full": (byma("AL30"), byma("AL30D")),
    "gap": (byma("GD30"), byma("GD30D")),
    "new": (byma("AL30"), byma("AL30C")),
    "empty": (byma("GD30"), byma("GD30C")),
}


def edges(clock: Clock) -> list[float]:
    windows = reference_windows(clock)
    return sorted({bound for window in windows.values() for bound in window})


def probes(edge: float) -> list[float]:
    """On, just before and just after ``edge``, then 10-second data two minutes around it."""
    exact = [
        edge,
        math.nextafter(edge, -math.inf),
        math.nextafter(edge, math.inf),
        edge - 0.001,
        edge + 0.001,
    ]
    return exact + [edge + 3.3 + 10 * k for k in range(-12, 12)]


def sample_times(pair: str, clock: Clock, rng: random.Random) -> list[float]:
    now = clock.now
    if pair == "empty":
        return []
    if pair == "new":
        return [now - 1500 + 10 * k + 0.7 for k in range(150)] + probes(now)
    times = {now - 31 * DAY + 1200 * k + rng.uniform(0, 1200) for k in range(31 * 72 + 2)}
    for edge in edges(clock):
        times.update(probes(edge))
    if pair == "gap":
        start, end = reference_windows(clock)["dia_anterior"]
        times = {t for t in times if not start <= t < end}
    return sorted(times)


def build_samples(
    scenario: Scenario,
    pair_ids: dict[str, int],
    make_sample: Callable[..., RatioSample],
) -> list[RatioSample]:
    rng = random.Random(scenario.name)
    clock, samples = scenario.clock, []
    month_start = clock.now - 30 * DAY
    # Extremes right at the month's edges: the one inside sets the minimum or maximum, the
    # one just outside would, if it were wrongly included.
    extremes = {
        month_start: 1300.0,
        math.nextafter(month_start, -math.inf): 1000.0,
        math.nextafter(clock.now, -math.inf): 1800.0,
        clock.now: 2000.0,
    }
    for name, pair_id in pair_ids.items():
        for asof in sample_times(name, clock, rng):
            value: float | None = extremes.get(asof, rng.uniform(1400.0, 1500.0))
            if asof not in extremes and rng.random() < 0.1:
                value = None  # a sample without the field: it counts nowhere
            last = value if scenario.field == "last_ratio" else rng.uniform(1400.0, 1500.0)
            mid = value if scenario.field == "mid_ratio" else rng.uniform(1400.0, 1500.0)
            samples.append(make_sample(pair_id, asof, mid, last=last))
    return samples


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_dashboard_rows_equal_the_reference_at_every_edge(
    scenario: Scenario,
    database: Database,
    make_settings: Callable[..., Settings],
    make_sample: Callable[..., RatioSample],
) -> None:
    """Every field of every row equals the reference, with samples on and around each edge."""
    repo = Repository(database)
    pairs: dict[str, RatioPair] = {
        name: await repo.create_pair(base, quote) for name, (base, quote) in PAIRS.items()
    }
    samples = build_samples(scenario, {n: p.id for n, p in pairs.items()}, make_sample)
    settings = make_settings(ratio_field=scenario.field, write_batch_size=1000)
    writer = Writer(database, settings)
    await writer.start()
    try:
        for sample in samples:
            await writer.submit_sample(sample)
        await writer.flush()
    finally:
        await writer.stop(5)

    clock = scenario.clock
    calendar = MarketCalendar(clock.tz, dt.time(11), dt.time(17), clock.holidays)
    windows = dashboard_windows(clock.now, calendar)
    expected_windows = reference_windows(clock)
    assert {name: (start, end) for name, start, end in windows.items()} == expected_windows

    stats = await repo.window_stats_many(list(windows.items()), field=scenario.field)
    for name, window in expected_windows.items():
        for pair in pairs.values():
            points = sorted(
                (s.asof, v)
                for s in samples
                if s.pair_id == pair.id and (v := getattr(s.values, scenario.field)) is not None
            )
            values = values_in(points, window)
            got = stats[name].get(pair.id)
            if not values:
                assert got is None, (name, pair.name)
                continue
            assert got is not None, (name, pair.name)
            assert (got.count, got.minimum, got.maximum) == (len(values), min(values), max(values))
            assert got.total == pytest.approx(math.fsum(values), rel=1e-12), (name, pair.name)

    result = await DashboardQuery(repo, calendar, scenario.field)(clock.now)
    served = {row["pair_id"]: row for row in result["data"]}
    assert sorted(served) == sorted(p.id for p in pairs.values())
    checked = 0
    for name, pair in pairs.items():
        expected = reference_row(pair, samples, clock, scenario.field)
        assert row_mismatches(served[pair.id], expected) == [], name
        checked += len(expected)
    assert checked == 4 * 20  # 4 pairs x 20 row fields, client_id_result included
    full, gap = served[pairs["full"].id], served[pairs["gap"].id]
    # The scenario exercises what it claims: the fallback, and extremes at the month edges.
    assert gap["promedio_dia_anterior"] is not None
    assert gap["promedio_dia_anterior"] != full["promedio_dia_anterior"]
    assert (full["minimo_mensual"], full["maximo_mensual"]) == (1300.0, 1800.0)
    assert served[pairs["empty"].id]["promedio_1mes"] is None
