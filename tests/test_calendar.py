"""MarketCalendar.is_open at its boundaries: the opening and closing minute, weekends,
holidays, a session running to midnight, and the market's own time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from cotiza.calendar import MarketCalendar
from cotiza.settings import Settings

BUENOS_AIRES = ZoneInfo("America/Argentina/Buenos_Aires")  # UTC-3, no DST
MADRID = ZoneInfo("Europe/Madrid")  # DST: UTC+1 in winter, UTC+2 in summer
HOLIDAY = dt.date(2026, 12, 8)  # a Tuesday


def at(
    day: dt.date, hour: int, minute: int = 0, second: float = 0.0, tz: ZoneInfo = BUENOS_AIRES
) -> float:
    whole = int(second)
    moment = dt.datetime(day.year, day.month, day.day, hour, minute, whole, tzinfo=tz)
    return moment.timestamp() + (second - whole)


@pytest.fixture
def calendar() -> MarketCalendar:
    return MarketCalendar(BUENOS_AIRES, dt.time(11), dt.time(17), [HOLIDAY])


MONDAY = dt.date(2026, 11, 30)


@pytest.mark.parametrize(
    ("hour", "minute", "second", "is_open"),
    [
        (10, 59, 59.999, False),
        (11, 0, 0.0, True),  # the opening minute is in
        (11, 0, 0.5, True),
        (14, 0, 0.0, True),
        (16, 59, 59.999, True),
        (17, 0, 0.0, False),  # the closing minute is out
        (17, 0, 0.001, False),
        (0, 0, 0.0, False),
        (23, 59, 59.0, False),
    ],
)  # fmt: skip
def test_opening_and_closing_minute(
    calendar: MarketCalendar, hour: int, minute: int, second: float, is_open: bool
) -> None:
    assert calendar.is_open(at(MONDAY, hour, minute, second)) is is_open


@pytest.mark.parametrize(
    ("day", "is_open"),
    [
        (dt.date(2026, 11, 27), True),  # Friday
        (dt.date(2026, 11, 28), False),  # Saturday
        (dt.date(2026, 11, 29), False),  # Sunday
        (dt.date(2026, 11, 30), True),  # Monday
        (HOLIDAY, False),
        (HOLIDAY + dt.timedelta(days=1), True),
    ],
)
def test_weekends_and_holidays_are_closed_all_day(
    calendar: MarketCalendar, day: dt.date, is_open: bool
) -> None:
    assert calendar.is_open(at(day, 14)) is is_open
    assert not calendar.is_open(at(day, 10, 59))


def test_the_market_time_zone_decides_not_utc(calendar: MarketCalendar) -> None:
    """11:00 in Buenos Aires is 14:00 UTC: the same instant read in UTC would be wrong."""
    assert calendar.is_open(at(MONDAY, 14, tz=ZoneInfo("UTC")))
    assert not calendar.is_open(at(MONDAY, 13, 59, 59, tz=ZoneInfo("UTC")))
    assert calendar.is_open(at(MONDAY, 19, 59, 59, tz=ZoneInfo("UTC")))
    assert not calendar.is_open(at(MONDAY, 20, tz=ZoneInfo("UTC")))


def test_the_local_date_decides_the_weekend() -> None:
    """Saturday 01:00 UTC is still Friday evening in Buenos Aires: open for a late session."""
    evening = MarketCalendar(BUENOS_AIRES, dt.time(18), None)
    saturday_utc = at(dt.date(2026, 11, 28), 1, tz=ZoneInfo("UTC"))
    assert evening.local(saturday_utc).weekday() == 4
    assert evening.is_open(saturday_utc)
    assert not evening.is_open(at(dt.date(2026, 11, 28), 19))  # Saturday evening, local


def test_a_session_to_midnight_includes_the_last_second() -> None:
    late = MarketCalendar(BUENOS_AIRES, dt.time(11), None)
    assert late.is_open(at(MONDAY, 23, 59, 59.999))
    assert not late.is_open(at(MONDAY + dt.timedelta(days=1), 10, 59, 59))


def test_daylight_saving_keeps_the_local_session() -> None:
    """In a zone with DST the session stays at local 09:00-17:30 on both sides of the change."""
    madrid = MarketCalendar(MADRID, dt.time(9), dt.time(17, 30))
    for day in (dt.date(2026, 3, 27), dt.date(2026, 3, 30)):  # the Friday before, Monday after
        assert not madrid.is_open(at(day, 8, 59, 59, tz=MADRID))
        assert madrid.is_open(at(day, 9, tz=MADRID))
        assert madrid.is_open(at(day, 17, 29, 59, tz=MADRID))
        assert not madrid.is_open(at(day, 17, 30, tz=MADRID))
    # 07:30 UTC is 08:30 in Madrid before the change (closed) and 09:30 after it (open).
    assert not madrid.is_open(at(dt.date(2026, 3, 27), 7, 30, tz=ZoneInfo("UTC")))
    assert madrid.is_open(at(dt.date(2026, 3, 30), 7, 30, tz=ZoneInfo("UTC")))


def test_from_settings_reads_hours_zone_and_holidays() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        market_hours="10:30-16:00",
        market_tz="America/Argentina/Buenos_Aires",
        market_holidays="2026-12-08",
    )
    calendar = MarketCalendar.from_settings(settings)
    assert calendar.is_open(at(MONDAY, 10, 30))
    assert not calendar.is_open(at(MONDAY, 10, 29, 59))
    assert not calendar.is_open(at(MONDAY, 16))
    assert not calendar.is_open(at(HOLIDAY, 12))
    always = MarketCalendar.from_settings(Settings(_env_file=None, market_hours="always"))  # type: ignore[call-arg]
    assert always.is_open(at(MONDAY, 0)) and always.is_open(at(MONDAY, 23, 59, 59))
    assert not always.is_open(at(dt.date(2026, 11, 29), 12))  # Sunday stays closed
