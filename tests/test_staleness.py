"""The staleness rule, and the three places that use it agreeing on every case."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from zoneinfo import ZoneInfo

import pytest

from cotiza.cache import QuoteCache
from cotiza.calendar import MarketCalendar
from cotiza.models import Quote, RatioPair, RatioValues
from cotiza.ratios import compute_ratios
from cotiza.staleness import quote_is_stale

LIMIT = 60.0
TZ = ZoneInfo("America/Argentina/Buenos_Aires")
CALENDAR = MarketCalendar(TZ, dt.time(11), dt.time(17))
OPEN = dt.datetime(2026, 3, 4, 12, 0, tzinfo=TZ).timestamp()  # a Wednesday, in session
CLOSED = dt.datetime(2026, 3, 4, 20, 0, tzinfo=TZ).timestamp()  # the same day, after hours


def quote(symbol: str, recv_ts: float) -> Quote:
    return Quote(symbol, 100.0, 1.0, 101.0, 1.0, 100.5, 1.0, None, None, 0, recv_ts)


@pytest.mark.parametrize(
    ("age", "market_open", "feed_down", "stale"),
    [
        (0.0, True, False, False),
        (LIMIT, True, False, False),  # exactly at the limit: still fresh
        (LIMIT + 0.001, True, False, True),
        (10 * LIMIT, False, False, False),  # market closed: the last price stays valid
        (0.0, True, True, True),  # feed down: stale however young
        (0.0, False, True, True),  # feed down wins over a closed market
    ],
)
def test_rule(age: float, market_open: bool, feed_down: bool, stale: bool) -> None:
    """Feed down makes every quote stale; a closed market none; otherwise age over the limit."""
    now = 1_700_000_000.0
    result = quote_is_stale(
        now - age, now, market_open=market_open, feed_down=feed_down, limit=LIMIT
    )
    assert result is stale


@pytest.mark.parametrize(
    ("now", "age", "feed_down"),
    list(itertools.product([OPEN, CLOSED], [0.0, LIMIT, LIMIT + 1, 5 * LIMIT], [False, True])),
)
def test_cache_and_ratio_maths_agree_with_the_rule(now: float, age: float, feed_down: bool) -> None:
    """QuoteCache.is_stale and compute_ratios judge a quote exactly as the rule does."""
    cache = QuoteCache(CALENDAR, LIMIT)
    base, other = quote("A", now - age), quote("B", now)
    expected = quote_is_stale(
        base.recv_ts, now, market_open=CALENDAR.is_open(now), feed_down=feed_down, limit=LIMIT
    )
    assert cache.is_stale(base, now, feed_down=feed_down) is expected
    values = compute_ratios(
        RatioPair(1, "A", "B"),
        base,
        other,
        now,
        LIMIT,
        market_open=CALENDAR.is_open(now),
        feed_down=feed_down,
    )
    assert (values == RatioValues(None, None, None, None)) is expected
    if not expected:
        assert values.mid_ratio is not None and math.isclose(values.mid_ratio, 1.0)
