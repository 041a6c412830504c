"""An independent reference of the dashboard table (contract section 5).

Written from the contract's words only, straight over the raw samples, sharing no code with
``cotiza.dashboard``, ``cotiza.calendar`` or the storage queries: the previous business day
is found by walking back over dates, its bounds by bisection over UTC seconds (the first
second whose local date is the day), averages with ``statistics.fmean``.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from cotiza.models import RatioPair, RatioSample

DAY = 86_400


@dataclass(frozen=True)
class Clock:
    """What the dashboard depends on besides the samples: now, the zone, the holidays."""

    now: float
    tz: ZoneInfo
    holidays: frozenset[dt.date] = frozenset()


def local_date(ts: float, tz: ZoneInfo) -> dt.date:
    return dt.datetime.fromtimestamp(ts, tz).date()


def first_second_of(day: dt.date, tz: ZoneInfo) -> int:
    """The first whole UTC second whose local date is ``day`` (a DST-proof local midnight)."""
    noon_utc = int(dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC).timestamp())
    low, high = noon_utc - 2 * DAY, noon_utc + DAY
    while low < high:
        middle = (low + high) // 2
        if local_date(middle, tz) >= day:
            high = middle
        else:
            low = middle + 1
    return low


def previous_business_day(clock: Clock) -> dt.date:
    day = local_date(clock.now, clock.tz)
    while True:
        day -= dt.timedelta(days=1)
        if day.weekday() < 5 and day not in clock.holidays:
            return day


def reference_windows(clock: Clock) -> dict[str, tuple[float, float]]:
    """Every window as ``(start, end)``, read as ``start <= asof < end``."""
    now = clock.now
    day = previous_business_day(clock)
    return {
        "rueda": (now - DAY, now),
        "dia_anterior": (
            first_second_of(day, clock.tz),
            first_second_of(day + dt.timedelta(days=1), clock.tz),
        ),
        "dia_anterior_fallback": (now - 2 * DAY, now - DAY),
        "semana": (now - 7 * DAY, now),
        "mes": (now - 30 * DAY, now),
    }


def values_in(points: Sequence[tuple[float, float]], window: tuple[float, float]) -> list[float]:
    start, end = window
    return [value for asof, value in points if start <= asof < end]


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _dif(last: float | None, ref: float | None) -> float | None:
    if last is None or ref is None or ref == 0:
        return None
    return (last - ref) / ref * 100


def _iso(ts: float) -> str:
    moment = dt.datetime.fromtimestamp(ts, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def reference_row(
    pair: RatioPair, samples: Iterable[RatioSample], clock: Clock, field: str
) -> dict[str, object]:
    """One row with unrounded numbers; ``EXPECTED_DECIMALS`` says how each is rounded."""
    points = sorted(
        (s.asof, value)
        for s in samples
        if s.pair_id == pair.id and (value := getattr(s.values, field)) is not None
    )
    windows = reference_windows(clock)
    month = values_in(points, windows["mes"])
    previous = values_in(points, windows["dia_anterior"]) or values_in(
        points, windows["dia_anterior_fallback"]
    )
    last = points[-1] if points else None
    value = None if last is None else last[1]
    refs = {
        "rueda": _mean(values_in(points, windows["rueda"])),
        "dia_anterior": _mean(previous),
        "1semana": _mean(values_in(points, windows["semana"])),
        "1mes": _mean(month),
        "minimo": min(month) if month else None,
        "maximo": max(month) if month else None,
    }
    return {
        "par": f"{pair.base.split(' - ')[2]}-{pair.quote.split(' - ')[2]}",
        "client_id": pair.client_id,
        "client_id_result": pair.client_id,  # the prototype's name, same value (contract)
        "pair_id": pair.id,
        "base": pair.base,
        "quote": pair.quote,
        "ultimo_ratio_operado": value,
        "ultimo_timestamp": None if last is None else _iso(last[0]),
        "promedio_rueda": refs["rueda"],
        "promedio_dia_anterior": refs["dia_anterior"],
        "promedio_1semana": refs["1semana"],
        "promedio_1mes": refs["1mes"],
        "minimo_mensual": refs["minimo"],
        "maximo_mensual": refs["maximo"],
        **{f"dif_{name}_pct": _dif(value, ref) for name, ref in refs.items()},
    }


EXPECTED_DECIMALS = {
    "ultimo_ratio_operado": 5,
    "promedio_rueda": 5,
    "promedio_dia_anterior": 5,
    "promedio_1semana": 5,
    "promedio_1mes": 5,
    "minimo_mensual": 5,
    "maximo_mensual": 5,
    "dif_rueda_pct": 2,
    "dif_dia_anterior_pct": 2,
    "dif_1semana_pct": 2,
    "dif_1mes_pct": 2,
    "dif_minimo_pct": 2,
    "dif_maximo_pct": 2,
}


def rounds_to(served: object, exact: object, decimals: int) -> bool:
    """``served`` is ``exact`` rounded to ``decimals``.

    Sums taken in another order differ in the last bits, so where ``exact`` lies within
    that noise (1e-12 relative) of a rounding tie, either neighbour is accepted.
    """
    if exact is None or served is None:
        return served is exact
    assert isinstance(exact, float) and isinstance(served, float)
    if served == round(exact, decimals):
        return True
    scaled = exact * 10**decimals
    noise = abs(scaled) * 1e-12
    tie = math.floor(scaled) + 0.5
    near_tie = abs(scaled - tie) <= noise
    return near_tie and served in (
        math.floor(scaled) / 10**decimals,
        math.ceil(scaled) / 10**decimals,
    )


def row_mismatches(served: dict[str, object], expected: dict[str, object]) -> list[str]:
    """Every field where the served row differs from the reference row."""
    assert served.keys() == expected.keys(), (sorted(served), sorted(expected))
    wrong = []
    for name, want in expected.items():
        got = served[name]
        decimals = EXPECTED_DECIMALS.get(name)
        ok = got == want if decimals is None else rounds_to(got, want, decimals)
        if not ok:
            wrong.append(f"{name}: served {got!r}, expected {want!r}")
    return wrong
