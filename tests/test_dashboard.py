"""Dashboard aggregation: time windows in market time and row building (contract section 5)."""

from __future__ import annotations

import datetime as dt
from dataclasses import fields
from zoneinfo import ZoneInfo

import pytest

from cotiza.calendar import MarketCalendar
from cotiza.dashboard import DashboardRow, build_dashboard_rows, dashboard_windows
from cotiza.models import RatioPair, WindowStats

BUENOS_AIRES = ZoneInfo("America/Argentina/Buenos_Aires")
DAY = 86_400.0


def _calendar(*holidays: dt.date) -> MarketCalendar:
    return MarketCalendar(BUENOS_AIRES, dt.time(11), dt.time(17), holidays=list(holidays))


def _utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC).timestamp()


# Buenos Aires is UTC-3 all year (no DST), so local midnight is 03:00 UTC.


def test_windows_on_a_weekday() -> None:
    """On Wednesday noon the previous business day is Tuesday, local midnight to midnight."""
    now = _utc(2025, 6, 11, 15)  # Wed 2025-06-11 12:00 local
    windows = dashboard_windows(now, _calendar())
    assert windows.dia_anterior.start == 1_749_524_400.0  # 2025-06-10 03:00 UTC
    assert windows.dia_anterior.start == _utc(2025, 6, 10, 3)
    assert windows.dia_anterior.end == _utc(2025, 6, 11, 3)
    assert (windows.rueda.start, windows.rueda.end) == (now - DAY, now)
    assert (windows.dia_anterior_fallback.start, windows.dia_anterior_fallback.end) == (
        now - 2 * DAY,
        now - DAY,
    )
    assert (windows.semana.start, windows.semana.end) == (now - 7 * DAY, now)
    assert (windows.mes.start, windows.mes.end) == (now - 30 * DAY, now)


def test_windows_on_a_monday_use_friday() -> None:
    """On a Monday the previous business day is the Friday before."""
    now = _utc(2025, 6, 9, 15)  # Mon 2025-06-09 12:00 local
    windows = dashboard_windows(now, _calendar())
    assert windows.dia_anterior.start == _utc(2025, 6, 6, 3)  # Fri 00:00 local
    assert windows.dia_anterior.end == _utc(2025, 6, 7, 3)  # Sat 00:00 local


def test_windows_after_a_monday_holiday_use_friday() -> None:
    """On the Tuesday after a Monday holiday the previous business day is Friday."""
    now = _utc(2025, 6, 17, 15)  # Tue 2025-06-17 12:00 local
    windows = dashboard_windows(now, _calendar(dt.date(2025, 6, 16)))
    assert windows.dia_anterior.start == _utc(2025, 6, 13, 3)
    assert windows.dia_anterior.end == _utc(2025, 6, 14, 3)


def test_windows_follow_the_local_date_not_the_utc_date() -> None:
    """At 22:00 local on Tuesday (already Wednesday in UTC) the previous day is Monday."""
    now = _utc(2025, 6, 11, 1)  # Tue 2025-06-10 22:00 local
    windows = dashboard_windows(now, _calendar())
    assert windows.dia_anterior.start == _utc(2025, 6, 9, 3)
    assert windows.dia_anterior.end == _utc(2025, 6, 10, 3)


CAIRO = ZoneInfo("Africa/Cairo")  # DST since 2023, switching at local midnight


@pytest.mark.parametrize(
    ("now", "start", "end", "hours"),
    [
        # Monday after Friday 2024-04-26, when 00:00 jumped to 01:00 (UTC+2 -> UTC+3).
        (_utc(2024, 4, 29, 7), _utc(2024, 4, 25, 22), _utc(2024, 4, 26, 21), 23),
        # Friday after Thursday 2024-10-31, when 24:00 fell back to 23:00 (UTC+3 -> UTC+2).
        (_utc(2024, 11, 1, 7), _utc(2024, 10, 30, 21), _utc(2024, 10, 31, 22), 25),
    ],
    ids=["spring_forward", "fall_back"],
)
def test_previous_business_day_across_a_dst_change(
    now: float, start: float, end: float, hours: int
) -> None:
    """In a zone with DST the previous business day runs midnight to midnight: 23 or 25 h."""
    calendar = MarketCalendar(CAIRO, dt.time(10), dt.time(14))
    windows = dashboard_windows(now, calendar)
    assert (windows.dia_anterior.start, windows.dia_anterior.end) == (start, end)
    assert windows.dia_anterior.end - windows.dia_anterior.start == hours * 3600
    # The rolling windows are elapsed time: a DST change inside them changes nothing.
    assert windows.semana.end - windows.semana.start == 7 * DAY
    assert (windows.rueda.start, windows.rueda.end) == (now - DAY, now)
    assert (windows.dia_anterior_fallback.start, windows.dia_anterior_fallback.end) == (
        now - 2 * DAY,
        now - DAY,
    )


def test_windows_iterate_by_name() -> None:
    """items() yields every window as (name, start, end) in a fixed order."""
    now = _utc(2025, 6, 11, 15)
    items = list(dashboard_windows(now, _calendar()).items())
    assert [name for name, _, _ in items] == [
        "rueda",
        "dia_anterior",
        "dia_anterior_fallback",
        "semana",
        "mes",
    ]
    assert items[0] == ("rueda", now - DAY, now)


PAIR = RatioPair(
    id=7, base="MERV - XMEV - AL30 - 24hs", quote="MERV - XMEV - AL30D - 24hs", client_id="c1"
)
ASOF = _utc(2025, 6, 11, 15) + 0.25


def _stats(
    count: int, total: float, low: float | None = None, high: float | None = None
) -> WindowStats:
    return WindowStats(count=count, total=total, minimum=low, maximum=high)


def test_full_row_rounds_and_computes_differences() -> None:
    """Averages and extremes round to 5 decimals; differences to 2, from unrounded values."""
    last = 102.123456
    stats = {
        "rueda": {7: _stats(3, 300.000003)},  # mean 100.000001
        "dia_anterior": {7: _stats(2, 202.0)},  # mean 101
        "dia_anterior_fallback": {7: _stats(1, 50.0)},  # ignored: dia_anterior has data
        "semana": {7: _stats(5, 510.0)},  # mean 102
        "mes": {7: _stats(10, 990.0, 95.5555555, 105.0)},  # mean 99
    }
    (row,) = build_dashboard_rows([PAIR], {7: (ASOF, last)}, stats)
    assert (row.par, row.client_id, row.pair_id) == ("AL30-AL30D", "c1", 7)
    assert (row.base, row.quote) == (PAIR.base, PAIR.quote)
    assert row.ultimo_ratio_operado == pytest.approx(102.12346)
    assert row.ultimo_timestamp == "2025-06-11T15:00:00.250Z"
    assert row.promedio_rueda == pytest.approx(100.0)
    assert row.promedio_dia_anterior == pytest.approx(101.0)
    assert row.promedio_1semana == pytest.approx(102.0)
    assert row.promedio_1mes == pytest.approx(99.0)
    assert row.minimo_mensual == pytest.approx(95.55556)
    assert row.maximo_mensual == pytest.approx(105.0)
    assert row.dif_rueda_pct == pytest.approx(2.12)  # 2.123455 / 100.000001 · 100 = 2.1234…
    assert row.dif_dia_anterior_pct == pytest.approx(1.11)  # 1.123456 / 101 · 100 = 1.1123…
    assert row.dif_1semana_pct == pytest.approx(0.12)  # 0.123456 / 102 · 100 = 0.1210…
    assert row.dif_1mes_pct == pytest.approx(3.16)  # 3.123456 / 99 · 100 = 3.1550…
    assert row.dif_minimo_pct == pytest.approx(6.87)  # 6.5679005 / 95.5555555 · 100 = 6.873…
    assert row.dif_maximo_pct == pytest.approx(-2.74)  # -2.876544 / 105 · 100 = -2.7395…


def test_differences_use_unrounded_values() -> None:
    """0.000014 against 0.00001 is +40 %, although both round to 0.00001."""
    stats = {"rueda": {7: _stats(2, 0.00002)}}
    (row,) = build_dashboard_rows([PAIR], {7: (ASOF, 0.000014)}, stats)
    assert row.ultimo_ratio_operado == pytest.approx(0.00001)
    assert row.promedio_rueda == pytest.approx(0.00001)
    assert row.dif_rueda_pct == pytest.approx(40.0)


@pytest.mark.parametrize(
    "previous_day",
    [{}, {7: _stats(0, 0.0)}],
    ids=["missing", "empty"],
)
def test_previous_day_falls_back_to_24_to_48_hours(previous_day: dict[int, WindowStats]) -> None:
    """With no data on the previous business day the 24-48 h window is used."""
    stats = {
        "dia_anterior": previous_day,
        "dia_anterior_fallback": {7: _stats(4, 400.0)},  # mean 100
    }
    (row,) = build_dashboard_rows([PAIR], {7: (ASOF, 110.0)}, stats)
    assert row.promedio_dia_anterior == pytest.approx(100.0)
    assert row.dif_dia_anterior_pct == pytest.approx(10.0)  # (110 - 100) / 100 · 100


def test_difference_is_null_when_reference_is_zero_or_missing() -> None:
    """A zero average or a window without data gives a null difference."""
    stats = {"rueda": {7: _stats(2, 0.0)}, "mes": {7: _stats(0, 0.0)}}
    (row,) = build_dashboard_rows([PAIR], {7: (ASOF, 1.5)}, stats)
    assert row.promedio_rueda == 0.0
    assert row.dif_rueda_pct is None
    assert row.promedio_1semana is None and row.dif_1semana_pct is None
    assert row.promedio_1mes is None and row.dif_1mes_pct is None
    assert row.minimo_mensual is None and row.dif_minimo_pct is None


def test_difference_is_null_without_a_last_value() -> None:
    """Averages still show when the pair has history but no latest sample."""
    stats = {"semana": {7: _stats(2, 3.0)}}
    (row,) = build_dashboard_rows([PAIR], {}, stats)
    assert row.ultimo_ratio_operado is None and row.ultimo_timestamp is None
    assert row.promedio_1semana == pytest.approx(1.5)
    assert row.dif_1semana_pct is None


def test_pair_without_data_has_only_identity_fields() -> None:
    """A pair with no samples at all has None in every value field."""
    other = RatioPair(id=8, base="MERV - XMEV - GD30 - 24hs", quote="MERV - XMEV - GD30D - 24hs")
    rows = build_dashboard_rows([other, PAIR], {7: (ASOF, 1.0)}, {"rueda": {7: _stats(1, 1.0)}})
    assert [row.pair_id for row in rows] == [8, 7]
    data = rows[0].as_dict()
    assert list(data) == [field.name for field in fields(DashboardRow)]
    identity = {"par", "client_id", "client_id_result", "pair_id", "base", "quote"}
    assert {key: data[key] for key in identity} == {
        "par": "GD30-GD30D",
        "client_id": "default",
        "client_id_result": "default",
        "pair_id": 8,
        "base": other.base,
        "quote": other.quote,
    }
    assert all(value is None for key, value in data.items() if key not in identity)
