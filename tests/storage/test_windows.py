"""Exact windows: the span decomposition and window stats to the last float at each edge."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable

import pytest
from storage_kit import expected_window

from cotiza.errors import InvalidRequestError
from cotiza.models import RatioSample, WindowStats
from cotiza.settings import Settings
from cotiza.storage.aggregates import DAY, HOUR, MINUTE
from cotiza.storage.database import Database
from cotiza.storage.repository import Repository
from cotiza.storage.tables import ratio_days, ratio_hours, ratio_minutes, ratio_samples
from cotiza.storage.windows import floor_to, span_totals, window_spans
from cotiza.storage.writer import Writer

D0 = 1_749_513_600  # 2025-06-10 00:00 UTC
AL30 = "MERV - XMEV - AL30 - 24hs"
AL30D = "MERV - XMEV - AL30D - 24hs"
GD30 = "MERV - XMEV - GD30 - 24hs"
GD30D = "MERV - XMEV - GD30D - 24hs"
SIZES = {ratio_minutes: MINUTE, ratio_hours: HOUR, ratio_days: DAY}


def _around(point: float) -> list[float]:
    """``point`` itself and the nearest floats on each side of it."""
    return [math.nextafter(point, -math.inf), float(point), math.nextafter(point, math.inf)]


def _check_spans(start: float, end: float) -> None:
    spans = window_spans(start, end)
    position = start
    raw = 0
    for table, lower, upper in spans:
        assert lower == position < upper, (start, end, spans)
        if table is ratio_samples:
            raw += 1
            # A raw span never holds a whole minute: those come from the aggregates.
            first_whole = -floor_to(-lower, MINUTE)
            assert first_whole + MINUTE > upper, (start, end, spans)
        else:
            size = SIZES[table]
            assert lower % size == 0 and upper % size == 0
        position = upper
    assert position == max(start, end)
    assert raw <= 2 and len(spans) <= 7


def test_floor_to_is_exact_next_to_bucket_boundaries() -> None:
    """The nearest floats below and above a boundary land in the buckets either side of it."""
    for boundary in (D0, D0 + 60, D0 + HOUR, D0 + DAY, 4 * D0):
        below, on, above = _around(boundary)
        assert floor_to(below, MINUTE) == boundary - MINUTE
        assert floor_to(on, MINUTE) == boundary == floor_to(above, MINUTE)


def test_whole_minute_edges_read_no_raw_samples() -> None:
    """Edges on whole minutes give buckets only: days inside, hours and minutes at the ends."""
    assert window_spans(D0 - 120, D0 + DAY + HOUR + 60) == [
        (ratio_minutes, D0 - 120, D0),
        (ratio_days, D0, D0 + DAY),
        (ratio_hours, D0 + DAY, D0 + DAY + HOUR),
        (ratio_minutes, D0 + DAY + HOUR, D0 + DAY + HOUR + 60),
    ]
    assert window_spans(D0, D0) == [] and window_spans(D0 + 5, D0) == []


def test_cut_minutes_at_the_edges_are_read_raw() -> None:
    """A start or end inside a minute adds the raw samples from it to the whole minute."""
    start, end = D0 - 75.25, D0 + 2 * HOUR + 0.5
    assert window_spans(start, end) == [
        (ratio_samples, start, D0 - 60),
        (ratio_minutes, D0 - 60, D0),
        (ratio_hours, D0, D0 + 2 * HOUR),
        (ratio_samples, D0 + 2 * HOUR, end),
    ]
    above = math.nextafter(D0, math.inf)
    assert window_spans(above, D0 + 120)[0] == (ratio_samples, above, D0 + 60)


def test_short_windows_are_read_raw() -> None:
    """A window within one minute, or across a single minute boundary, is one raw span."""
    assert window_spans(D0 + 1.5, D0 + 59.5) == [(ratio_samples, D0 + 1.5, D0 + 59.5)]
    assert window_spans(D0 - 30.0, D0 + 30.0) == [(ratio_samples, D0 - 30.0, D0 + 30.0)]
    assert window_spans(D0 - 30.0, D0 + 60.0) == [
        (ratio_samples, D0 - 30.0, D0),
        (ratio_minutes, D0, D0 + 60),
    ]


def test_spans_cover_random_windows_exactly() -> None:
    """For random bounds, whole or cut, the spans are contiguous, aligned and minimal."""
    rng = random.Random(14)
    for _ in range(2000):
        start = D0 + rng.choice([rng.randrange(-3 * DAY, 3 * DAY), rng.uniform(-3 * DAY, 3 * DAY)])
        end = start + rng.choice([rng.randrange(0, 40 * DAY), rng.uniform(0, 40 * DAY)])
        if rng.random() < 0.2:
            start = rng.choice(_around(floor_to(start, MINUTE)))
        _check_spans(start, end)


def test_bad_bounds_and_fields_are_refused() -> None:
    """Non-finite bounds and fields that are not ratio columns are invalid requests."""
    with pytest.raises(InvalidRequestError):
        window_spans(-math.inf, D0)
    with pytest.raises(InvalidRequestError):
        window_spans(D0, math.nan)
    with pytest.raises(InvalidRequestError):
        span_totals(window_spans(D0 + 0.5, D0 + 1.5), "pair_id")


def _anchors() -> list[float]:
    """Edges of every kind: whole minute, hour and day, inside a minute, and their neighbours."""
    points = [D0 + 60, D0 + HOUR, D0 + DAY, D0 + 3 * DAY + 61.5, D0 + 1234.125]
    return sorted({moment for point in points for moment in _around(point)})


@pytest.fixture
async def probed(
    database: Database,
    make_settings: Callable[..., Settings],
    make_sample: Callable[..., RatioSample],
) -> list[RatioSample]:
    """Two pairs with samples on, just before and just after every anchor, plus 10-s data."""
    repo = Repository(database)
    pair_ids = [(await repo.create_pair(AL30, AL30D)).id, (await repo.create_pair(GD30, GD30D)).id]
    rng = random.Random(3)
    probes: set[float] = set()
    for anchor in _anchors():
        probes.update(anchor + offset for offset in (-59.9, -10.0, -0.25, 0.25, 10.0, 59.9))
        probes.update(_around(anchor))
    background = {D0 - HOUR + 37 * k + 0.25 for k in range(4 * DAY // 37)} - probes
    samples = [
        make_sample(pid, asof, rng.uniform(900.0, 1100.0))
        for asof in sorted(probes)
        for pid in pair_ids
    ] + [
        make_sample(pid, asof, None if rng.random() < 0.1 else rng.uniform(900.0, 1100.0))
        for asof in sorted(background)
        for pid in pair_ids
    ]
    writer = Writer(database, make_settings(write_batch_size=2000))
    await writer.start()
    try:
        for sample in samples:
            await writer.submit_sample(sample)
        await writer.flush()
    finally:
        await writer.stop(5)
    return samples


def _assert_equal(actual: dict[int, WindowStats], expected: dict[int, WindowStats]) -> None:
    assert actual.keys() == expected.keys()
    for pid, want in expected.items():
        got = actual[pid]
        assert (got.count, got.minimum, got.maximum) == (want.count, want.minimum, want.maximum)
        assert got.total == pytest.approx(want.total, rel=1e-12)


async def test_windows_between_any_two_edges_are_exact(
    database: Database, probed: list[RatioSample]
) -> None:
    """Every window between two anchors counts exactly the samples with start <= asof < end."""
    windows = [
        (f"{i}-{j}", start, end)
        for (i, start), (j, end) in itertools.combinations(enumerate(_anchors()), 2)
    ]
    result = await Repository(database).window_stats_many(windows, field="mid_ratio")
    assert len(result) == len(windows) > 100
    for name, start, end in windows:
        expected = expected_window(probed, start, end)
        assert expected, name
        _assert_equal(result[name], expected)


async def test_a_sample_on_an_edge_counts_only_at_the_start(
    database: Database, probed: list[RatioSample]
) -> None:
    """A sample exactly at ``start`` is in the window; one exactly at ``end`` is not."""
    repo = Repository(database)
    below, on, above = _around(D0 + 1234.125)
    value = {(s.pair_id, s.asof): s.values.mid_ratio for s in probed}
    pair_ids = sorted({s.pair_id for s in probed})

    def alone(pid: int, asof: float) -> WindowStats:
        found = value[pid, asof]
        assert found is not None
        return WindowStats(1, found, found, found)

    starting = await repo.window_stats(on, above, field="mid_ratio")
    assert starting == {pid: alone(pid, on) for pid in pair_ids}
    ending = await repo.window_stats(below, on, field="mid_ratio")
    assert ending == {pid: alone(pid, below) for pid in pair_ids}
    both = await repo.window_stats(below, above, field="mid_ratio")
    assert {pid: stats.count for pid, stats in both.items()} == dict.fromkeys(pair_ids, 2)
