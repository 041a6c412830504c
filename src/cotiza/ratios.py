"""Ratio maths (contract section 5): live ratios from two quotes and rolling indicators.

Everything here is pure: no I/O, no clock, no event loop. Callers pass ``now`` in.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from cotiza.models import Indicators, Quote, RatioPair, RatioValues
from cotiza.staleness import quote_is_stale

BAND_WIDTH = 1.5  # band_upper/lower = sma180_mid ± BAND_WIDTH · std180_mid


class PairDefinition(NamedTuple):
    """A ratio pair to seed at first start (a ``RatioPair`` without a database id)."""

    base: str
    quote: str
    factor: float = 1.0
    client_id: str = "default"


def _byma(ticker: str, settlement: str = "24hs") -> str:
    return f"MERV - XMEV - {ticker} - {settlement}"


DEFAULT_PAIRS: tuple[PairDefinition, ...] = (
    PairDefinition(_byma("AL30"), _byma("AL30D")),  # MEP
    PairDefinition(_byma("GD30"), _byma("GD30D")),  # MEP
    PairDefinition(_byma("AL30"), _byma("AL30C")),  # CCL
    PairDefinition(_byma("GD30"), _byma("GD30C")),  # CCL
    PairDefinition(_byma("AL30D"), _byma("AL30C")),  # canje
    PairDefinition(_byma("AL30", "CI"), _byma("AL30D", "CI")),  # MEP, immediate settlement
)


# --------------------------------------------------------------------------- live ratios


def _price(value: float | None) -> float | None:
    """A usable price, or None when missing, zero, negative or not finite."""
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return value


def _mid(quote: Quote) -> float | None:
    bid, offer = _price(quote.bid), _price(quote.offer)
    if bid is not None and offer is not None:
        return (bid + offer) / 2
    return _price(quote.last)


def _ratio(factor: float, numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None:
        return None
    ratio = factor * numerator / denominator
    return ratio if math.isfinite(ratio) else None  # absurd prices: no ratio, not infinity


def _fresh(
    quote: Quote | None, now: float, limit: float, market_open: bool, feed_down: bool
) -> Quote | None:
    if quote is None or quote_is_stale(
        quote.recv_ts, now, market_open=market_open, feed_down=feed_down, limit=limit
    ):
        return None
    return quote


def compute_ratios(
    pair: RatioPair,
    base: Quote | None,
    quote: Quote | None,
    now: float,
    stale_after: float,
    *,
    market_open: bool = True,
    feed_down: bool = False,
) -> RatioValues:
    """The four live ratios of ``pair``; None wherever a side is missing, non-positive or stale.

    Staleness is ``cotiza.staleness.quote_is_stale`` with ``stale_after`` as the limit; the
    defaults (market open, feed up) judge by age alone.
    """
    a = _fresh(base, now, stale_after, market_open, feed_down)
    b = _fresh(quote, now, stale_after, market_open, feed_down)
    if a is None or b is None:
        return RatioValues(None, None, None, None)
    f = pair.factor
    return RatioValues(
        bid_ratio=_ratio(f, _price(a.bid), _price(b.offer)),
        ask_ratio=_ratio(f, _price(a.offer), _price(b.bid)),
        mid_ratio=_ratio(f, _mid(a), _mid(b)),
        last_ratio=_ratio(f, _price(a.last), _price(b.last)),
    )


# --------------------------------------------------------------------------- statistics


def _scale(values: Sequence[float]) -> float:
    """A power of two near the largest magnitude: dividing by it is exact, and sums of
    the quotients (and of their squares) cannot overflow."""
    return math.ldexp(1.0, math.frexp(max(abs(v) for v in values))[1])


def _mean(values: Sequence[float]) -> float | None:
    if not values:
        return None
    scale = _scale(values)
    return math.fsum(v / scale for v in values) / len(values) * scale


def _pstdev(values: Sequence[float]) -> float | None:
    """Population standard deviation (two-pass over fsum); None with fewer than 2 values.

    Computed on the values divided by their largest magnitude, so that squares of huge
    ratios (a misquoted leg) cannot overflow and stop the sampling round.
    """
    if len(values) < 2:
        return None
    if min(values) == max(values):
        # Exactly zero: fsum(x)/n may differ from x in the last bit and leave a tiny
        # spurious deviation that would turn z-scores into huge numbers.
        return 0.0
    scale = _scale(values)
    scaled = [v / scale for v in values]
    mean = math.fsum(scaled) / len(scaled)
    return math.sqrt(math.fsum((x - mean) ** 2 for x in scaled) / len(scaled)) * scale


def _present(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def _z(ratio: float | None, centre: float | None, scale: float | None) -> float | None:
    if ratio is None or centre is None or not scale:
        return None
    return (ratio - centre) / scale


class RollingIndicators:
    """The rolling indicators of one pair over its last ``long_window`` samples.

    Windows are counted in samples, not seconds; a sample whose mid is None still takes a
    slot (it only contributes no value). Recomputed from scratch on every call, which is
    cheap for a few hundred samples and keeps the numbers free of drift.
    """

    def __init__(self, long_window: int = 180, short_window: int = 60) -> None:
        if short_window < 1 or long_window < short_window:
            raise ValueError("windows must satisfy 1 <= short_window <= long_window")
        self.long_window = long_window
        self.short_window = short_window
        self._samples: deque[RatioValues] = deque(maxlen=long_window)

    def __len__(self) -> int:
        return len(self._samples)

    def warm(self, samples: Iterable[RatioValues]) -> None:
        """Preload stored history, oldest first (same as pushing each sample)."""
        self._samples.extend(samples)

    def push(self, values: RatioValues) -> Indicators:
        """Append a sample and return the indicators including it."""
        self._samples.append(values)
        return self._compute(values)

    def peek(self, values: RatioValues) -> Indicators:
        """Indicators for live ``values`` against the current windows, without appending."""
        return self._compute(values)

    def _compute(self, live: RatioValues) -> Indicators:
        window = list(self._samples)
        mids = _present(v.mid_ratio for v in window)
        short_mids = _present(v.mid_ratio for v in window[-self.short_window :])
        sma_mid = _mean(mids)
        std_short = _pstdev(short_mids)
        std_long = _pstdev(mids)
        band_upper: float | None = None
        band_lower: float | None = None
        if sma_mid is not None and std_long is not None:
            band_upper = sma_mid + BAND_WIDTH * std_long
            band_lower = sma_mid - BAND_WIDTH * std_long
        spread: float | None = None
        if live.ask_ratio is not None and live.bid_ratio is not None:
            spread = live.ask_ratio - live.bid_ratio
        return Indicators(
            sma180_mid=sma_mid,
            sma180_bid=_mean(_present(v.bid_ratio for v in window)),
            sma180_ask=_mean(_present(v.ask_ratio for v in window)),
            std60_mid=std_short,
            std180_mid=std_long,
            band_upper=band_upper,
            band_lower=band_lower,
            z_bid=_z(live.bid_ratio, sma_mid, std_short),
            z_ask=_z(live.ask_ratio, sma_mid, std_short),
            vol_ratio=std_short / std_long if std_short is not None and std_long else None,
            ratio_spread=spread,
        )
