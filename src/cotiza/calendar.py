"""Market calendar: session hours and business days in the market's time zone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from cotiza.settings import Settings


class MarketCalendar:
    """Answers "is the market open now?" and "which was the previous business day?"."""

    def __init__(
        self,
        tz: ZoneInfo,
        open_time: dt.time,
        close_time: dt.time | None,
        holidays: Iterable[dt.date] = (),
    ) -> None:
        self.tz = tz
        self.open_time = open_time
        self.close_time = close_time  # None: midnight
        self.holidays = frozenset(holidays)

    @classmethod
    def from_settings(cls, settings: Settings) -> MarketCalendar:
        open_time, close_time = settings.session_hours
        return cls(settings.tz, open_time, close_time, settings.market_holidays)

    def local(self, ts: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(ts, self.tz)

    def is_business_day(self, day: dt.date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def is_open(self, ts: float) -> bool:
        """True during the trading session of a business day."""
        now = self.local(ts)
        if not self.is_business_day(now.date()):
            return False
        current = now.time()
        if current < self.open_time:
            return False
        return self.close_time is None or current < self.close_time

    def previous_business_day(self, ts: float) -> dt.date:
        """The business day before the local date of ``ts`` (weekends and holidays skipped)."""
        day = self.local(ts).date() - dt.timedelta(days=1)
        for _ in range(366):
            if self.is_business_day(day):
                return day
            day -= dt.timedelta(days=1)
        raise ValueError("no business day in the previous year")

    def day_bounds(self, day: dt.date) -> tuple[float, float]:
        """Epoch seconds of local midnight at the start and end of ``day``."""
        start = dt.datetime.combine(day, dt.time(0), self.tz)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), self.tz)
        return start.timestamp(), end.timestamp()
