"""Ratio maths: live ratios from quotes and rolling indicators (contract section 5)."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from cotiza.models import Indicators, Quote, RatioPair, RatioValues
from cotiza.ratios import DEFAULT_PAIRS, RollingIndicators, compute_ratios

NOW = 1_750_000_000.0
STALE_AFTER = 60.0
PAIR = RatioPair(id=1, base="A", quote="B", factor=2.0)


def _quote(
    symbol: str,
    bid: float | None,
    offer: float | None,
    last: float | None,
    recv_ts: float = NOW,
) -> Quote:
    return Quote(
        symbol=symbol,
        bid=bid,
        bid_size=1.0,
        offer=offer,
        offer_size=1.0,
        last=last,
        last_size=1.0,
        cl=None,
        op=None,
        ts_ms=int(recv_ts * 1000),
        recv_ts=recv_ts,
    )


def _values(bid: float | None, ask: float | None, mid: float | None) -> RatioValues:
    return RatioValues(bid_ratio=bid, ask_ratio=ask, mid_ratio=mid, last_ratio=mid)


# A: bid 100 / offer 102 / last 101 (mid 101); B: bid 40 / offer 50 / last 44 (mid 45).
BASE = _quote("A", 100.0, 102.0, 101.0)
QUOTE = _quote("B", 40.0, 50.0, 44.0)


def test_every_ratio_formula_applies_the_factor() -> None:
    """Each ratio follows its formula with factor 2."""
    values = compute_ratios(PAIR, BASE, QUOTE, NOW, STALE_AFTER)
    assert values.bid_ratio == pytest.approx(2 * 100 / 50)  # f·A.bid/B.offer = 4.0
    assert values.ask_ratio == pytest.approx(2 * 102 / 40)  # f·A.offer/B.bid = 5.1
    assert values.mid_ratio == pytest.approx(2 * 101 / 45)  # f·101/45 = 4.4888…
    assert values.last_ratio == pytest.approx(2 * 101 / 44)  # f·A.last/B.last = 4.5909…


def test_mid_falls_back_to_last_when_a_side_is_missing() -> None:
    """Without an offer, A's mid is its last price (101) and the ask ratio is null."""
    base = _quote("A", 100.0, None, 101.0)
    values = compute_ratios(PAIR, base, QUOTE, NOW, STALE_AFTER)
    assert values.mid_ratio == pytest.approx(2 * 101 / 45)
    assert values.bid_ratio == pytest.approx(2 * 100 / 50)
    assert values.ask_ratio is None


def test_mid_falls_back_to_last_when_a_side_is_zero() -> None:
    """A zero bid on B makes B's mid its last price (44) and the ask ratio null."""
    quote = _quote("B", 0.0, 50.0, 44.0)
    values = compute_ratios(PAIR, BASE, quote, NOW, STALE_AFTER)
    assert values.mid_ratio == pytest.approx(2 * 101 / 44)
    assert values.ask_ratio is None
    assert values.bid_ratio == pytest.approx(2 * 100 / 50)


def test_mid_is_null_when_sides_and_last_are_missing() -> None:
    """With no bid, no offer and no last, the mid ratio is null."""
    base = _quote("A", None, None, None)
    values = compute_ratios(PAIR, base, QUOTE, NOW, STALE_AFTER)
    assert values == RatioValues(None, None, None, None)


@pytest.mark.parametrize("missing", ["base", "quote"])
def test_missing_quote_gives_all_null(missing: str) -> None:
    """A pair with one quote never seen has only null ratios."""
    base = None if missing == "base" else BASE
    quote = None if missing == "quote" else QUOTE
    assert compute_ratios(PAIR, base, quote, NOW, STALE_AFTER) == RatioValues(
        None, None, None, None
    )


def test_missing_field_nulls_only_the_ratios_that_use_it() -> None:
    """A missing last price on B nulls the last ratio and leaves the others."""
    quote = _quote("B", 40.0, 50.0, None)
    values = compute_ratios(PAIR, BASE, quote, NOW, STALE_AFTER)
    assert values.last_ratio is None
    assert values.bid_ratio == pytest.approx(4.0)
    assert values.ask_ratio == pytest.approx(5.1)
    assert values.mid_ratio == pytest.approx(2 * 101 / 45)


@pytest.mark.parametrize("price", [0.0, -1.0, math.nan, math.inf])
def test_non_positive_or_non_finite_price_gives_null(price: float) -> None:
    """A zero, negative or non-finite offer on B nulls the bid ratio instead of dividing."""
    quote = _quote("B", 40.0, price, 44.0)
    values = compute_ratios(PAIR, BASE, quote, NOW, STALE_AFTER)
    assert values.bid_ratio is None
    assert values.mid_ratio == pytest.approx(2 * 101 / 44)  # B's mid falls back to last


def test_stale_quote_gives_all_null() -> None:
    """A quote received more than stale_after seconds ago yields no ratio at all."""
    quote = _quote("B", 40.0, 50.0, 44.0, recv_ts=NOW - STALE_AFTER - 0.001)
    assert compute_ratios(PAIR, BASE, quote, NOW, STALE_AFTER) == RatioValues(
        None, None, None, None
    )


def test_quote_exactly_at_the_staleness_limit_is_fresh() -> None:
    """A quote exactly stale_after seconds old is still used."""
    quote = _quote("B", 40.0, 50.0, 44.0, recv_ts=NOW - STALE_AFTER)
    values = compute_ratios(PAIR, BASE, quote, NOW, STALE_AFTER)
    assert values.bid_ratio == pytest.approx(4.0)


# Series for windows long=4, short=2. S4 is a gap: it takes a slot but has no values.
S1 = _values(0.9, 1.1, 1.0)
S2 = _values(1.9, 2.1, 2.0)
S3 = _values(2.9, 3.1, 3.0)
S4 = _values(None, None, None)
S5 = _values(4.9, 5.1, 5.0)
S6 = _values(5.8, 6.2, 6.0)


def test_rolling_indicators_on_a_hand_checked_series() -> None:
    """Indicators over long=4/short=2 windows match values computed by hand."""
    rolling = RollingIndicators(long_window=4, short_window=2)

    first = rolling.push(S1)
    assert first.sma180_mid == pytest.approx(1.0)
    assert first.std60_mid is None and first.std180_mid is None
    assert first.band_upper is None and first.z_bid is None and first.vol_ratio is None
    assert first.ratio_spread == pytest.approx(0.2)  # 1.1 - 0.9

    second = rolling.push(S2)  # mids 1, 2
    assert second.sma180_mid == pytest.approx(1.5)
    assert second.sma180_bid == pytest.approx((0.9 + 1.9) / 2)
    assert second.sma180_ask == pytest.approx((1.1 + 2.1) / 2)
    assert second.std60_mid == pytest.approx(0.5)
    assert second.std180_mid == pytest.approx(0.5)
    assert second.band_upper == pytest.approx(1.5 + 1.5 * 0.5)
    assert second.band_lower == pytest.approx(1.5 - 1.5 * 0.5)
    assert second.z_bid == pytest.approx((1.9 - 1.5) / 0.5)  # 0.8
    assert second.z_ask == pytest.approx((2.1 - 1.5) / 0.5)  # 1.2
    assert second.vol_ratio == pytest.approx(1.0)

    third = rolling.push(S3)  # long mids 1, 2, 3; short mids 2, 3
    assert third.sma180_mid == pytest.approx(2.0)
    assert third.std180_mid == pytest.approx(math.sqrt(2 / 3))  # sqrt((1 + 0 + 1) / 3)
    assert third.std60_mid == pytest.approx(0.5)
    assert third.z_bid == pytest.approx((2.9 - 2.0) / 0.5)
    assert third.vol_ratio == pytest.approx(0.5 / math.sqrt(2 / 3))

    gap = rolling.push(S4)  # short window S3, S4 holds a single mid
    assert gap.sma180_mid == pytest.approx(2.0)
    assert gap.std180_mid == pytest.approx(math.sqrt(2 / 3))
    assert gap.std60_mid is None
    assert gap.z_bid is None and gap.z_ask is None and gap.vol_ratio is None
    assert gap.ratio_spread is None

    fifth = rolling.push(S5)  # S1 evicted: long mids 2, 3, 5; short S4, S5 → one mid
    assert len(rolling) == 4
    assert fifth.sma180_mid == pytest.approx(10 / 3)
    assert fifth.sma180_bid == pytest.approx((1.9 + 2.9 + 4.9) / 3)
    assert fifth.sma180_ask == pytest.approx((2.1 + 3.1 + 5.1) / 3)
    # deviations -4/3, -1/3, 5/3 → variance (16 + 1 + 25) / 27 = 14/9
    assert fifth.std180_mid == pytest.approx(math.sqrt(14) / 3)
    assert fifth.std60_mid is None

    sixth = rolling.push(S6)  # long mids 3, 5, 6 (mean 14/3, variance 14/9); short 5, 6
    assert sixth.sma180_mid == pytest.approx(14 / 3)
    assert sixth.std180_mid == pytest.approx(math.sqrt(14) / 3)
    assert sixth.std60_mid == pytest.approx(0.5)
    assert sixth.band_upper == pytest.approx(14 / 3 + 1.5 * math.sqrt(14) / 3)
    assert sixth.band_lower == pytest.approx(14 / 3 - 1.5 * math.sqrt(14) / 3)
    assert sixth.z_bid == pytest.approx((5.8 - 14 / 3) / 0.5)
    assert sixth.z_ask == pytest.approx((6.2 - 14 / 3) / 0.5)
    assert sixth.vol_ratio == pytest.approx(0.5 / (math.sqrt(14) / 3))
    assert sixth.ratio_spread == pytest.approx(0.4)


def test_default_windows_match_statistics_module() -> None:
    """With 180/60 windows the indicators equal statistics.mean/pstdev of the kept samples."""
    rng = random.Random(7)
    series = [
        _values(None, None, None)
        if rng.random() < 0.1
        else _values(1100 + rng.gauss(0, 5), 1110 + rng.gauss(0, 5), 1105 + rng.gauss(0, 5))
        for _ in range(250)
    ]
    series[-1] = _values(1101.0, 1112.0, 1106.5)  # a complete last sample for the z-scores
    rolling = RollingIndicators()
    for values in series[:-1]:
        rolling.push(values)
    result = rolling.push(series[-1])

    long_mids = [v.mid_ratio for v in series[-180:] if v.mid_ratio is not None]
    short_mids = [v.mid_ratio for v in series[-60:] if v.mid_ratio is not None]
    long_bids = [v.bid_ratio for v in series[-180:] if v.bid_ratio is not None]
    sma = statistics.mean(long_mids)
    std_long = statistics.pstdev(long_mids)
    std_short = statistics.pstdev(short_mids)
    assert len(rolling) == 180
    assert result.sma180_mid == pytest.approx(sma, rel=1e-12)
    assert result.sma180_bid == pytest.approx(statistics.mean(long_bids), rel=1e-12)
    assert result.std180_mid == pytest.approx(std_long, rel=1e-9)
    assert result.std60_mid == pytest.approx(std_short, rel=1e-9)
    assert result.vol_ratio == pytest.approx(std_short / std_long, rel=1e-9)
    assert result.z_bid == pytest.approx((1101.0 - sma) / std_short, rel=1e-9)
    assert result.z_ask == pytest.approx((1112.0 - sma) / std_short, rel=1e-9)


def test_peek_does_not_mutate_and_uses_live_values_only_for_z_and_spread() -> None:
    """peek leaves the window untouched; sma/std come from the window, z/spread from live."""
    rolling = RollingIndicators(long_window=4, short_window=2)
    rolling.warm([S1, S2, S3])  # sma 2, std60 0.5 (mids 2, 3)
    live = _values(10.0, 11.0, 10.5)

    peeked = rolling.peek(live)
    assert len(rolling) == 3
    assert peeked.sma180_mid == pytest.approx(2.0)
    assert peeked.std60_mid == pytest.approx(0.5)
    assert peeked.z_bid == pytest.approx((10.0 - 2.0) / 0.5)
    assert peeked.z_ask == pytest.approx((11.0 - 2.0) / 0.5)
    assert peeked.ratio_spread == pytest.approx(1.0)
    assert rolling.peek(live) == peeked

    untouched = RollingIndicators(long_window=4, short_window=2)
    untouched.warm([S1, S2, S3])
    assert rolling.push(S5) == untouched.push(S5)


def test_warm_start_equals_pushing_the_same_samples() -> None:
    """Warming with history gives the same next indicators as pushing it one by one."""
    history = [S1, S2, S3, S4, S5]
    warmed = RollingIndicators(long_window=4, short_window=2)
    warmed.warm(history)
    pushed = RollingIndicators(long_window=4, short_window=2)
    for values in history:
        pushed.push(values)
    assert len(warmed) == len(pushed) == 4
    assert warmed.push(S6) == pushed.push(S6)


def test_z_and_vol_are_null_when_std_is_zero() -> None:
    """A constant series has zero deviation exactly, so z and vol_ratio are null."""
    rolling = RollingIndicators(long_window=4, short_window=2)
    for _ in range(3):
        result = rolling.push(_values(0.09, 0.11, 0.1))
    assert result.std60_mid == 0.0
    assert result.std180_mid == 0.0
    assert result.z_bid is None and result.z_ask is None and result.vol_ratio is None
    assert result.band_upper == pytest.approx(0.1)
    assert result.band_lower == pytest.approx(0.1)


def test_empty_window_gives_empty_indicators_except_spread() -> None:
    """Peeking with no history gives null statistics and the live spread."""
    result = RollingIndicators().peek(_values(1.0, 1.5, 1.25))
    assert result == Indicators(ratio_spread=0.5)


def test_invalid_windows_are_rejected() -> None:
    """A short window longer than the long one is a configuration error."""
    with pytest.raises(ValueError):
        RollingIndicators(long_window=2, short_window=4)


def test_default_pairs_cover_mep_ccl_and_canje() -> None:
    """The seeded pairs are the six MEP/CCL/canje definitions with factor 1 for 'default'."""
    names = [RatioPair(id=0, base=p.base, quote=p.quote).name for p in DEFAULT_PAIRS]
    assert names == [
        "AL30-AL30D",
        "GD30-GD30D",
        "AL30-AL30C",
        "GD30-GD30C",
        "AL30D-AL30C",
        "AL30 CI-AL30D CI",
    ]
    assert DEFAULT_PAIRS[0].base == "MERV - XMEV - AL30 - 24hs"
    assert DEFAULT_PAIRS[0].quote == "MERV - XMEV - AL30D - 24hs"
    assert DEFAULT_PAIRS[-1].base == "MERV - XMEV - AL30 - CI"
    assert DEFAULT_PAIRS[-1].quote == "MERV - XMEV - AL30D - CI"
    assert all(p.factor == 1 and p.client_id == "default" for p in DEFAULT_PAIRS)
    base, quote, factor, client_id = DEFAULT_PAIRS[1]
    assert (base, quote, factor, client_id) == (
        "MERV - XMEV - GD30 - 24hs",
        "MERV - XMEV - GD30D - 24hs",
        1.0,
        "default",
    )


def test_absurd_prices_give_no_ratio_instead_of_infinity() -> None:
    """A misquoted leg (1e300 over 1e-300) overflows: the ratio is null, never inf."""
    huge, tiny = _quote("A", 1e300, 1e300, 1e300), _quote("B", 1e-300, 1e-300, 1e-300)
    assert compute_ratios(PAIR, huge, tiny, NOW, STALE_AFTER) == _values(None, None, None)


def test_indicators_of_huge_ratios_do_not_overflow() -> None:
    """Squares of 1e200 overflow a float; the window's statistics are scaled first."""
    rolling = RollingIndicators(long_window=4, short_window=2)
    mids = [1e200, 3e200, 2e200, 4e200]
    for mid in mids:
        indicators = rolling.push(_values(mid, mid, mid))
    assert indicators.sma180_mid == pytest.approx(statistics.fmean(mids))
    assert indicators.std180_mid == pytest.approx(
        statistics.pstdev([m / 1e200 for m in mids]) * 1e200
    )
    assert indicators.std60_mid == pytest.approx(1e200)  # the last two: 2e200, 4e200
    assert all(math.isfinite(v) for v in (indicators.band_upper, indicators.band_lower) if v)


def test_statistics_of_ordinary_ratios_are_unchanged_by_the_scaling() -> None:
    """The scale is a power of two: dividing and multiplying by it is exact."""
    rng = random.Random(8)
    mids = [1000 + rng.uniform(-50, 50) for _ in range(180)]
    rolling = RollingIndicators()
    for mid in mids:
        indicators = rolling.push(_values(mid, mid, mid))
    assert indicators.sma180_mid == math.fsum(mids) / len(mids)
    assert indicators.std180_mid == pytest.approx(statistics.pstdev(mids), rel=1e-12)
