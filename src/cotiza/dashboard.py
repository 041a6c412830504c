"""Dashboard aggregation (contract section 5): time windows and one summary row per pair.

Pure: the caller queries ``WindowStats`` for each window of ``dashboard_windows(now, ...)``
and hands them to ``build_dashboard_rows``. The window rules, the same as the contract's:

- ``now`` is the service's wall clock (UTC epoch seconds) read once per refresh; every
  window of that refresh uses the same ``now``.
- Every window is half-open, ``start <= asof < end``, over the samples' ``asof`` (the
  wall clock of the process that took the sample, UTC epoch seconds): a sample exactly at
  ``start`` counts, one exactly at ``end`` does not. Samples whose ratio field is null do
  not count. Windows are exact at both edges, to the sample.
- rueda: ``[now - 86400 s, now)``; semana: ``[now - 7 * 86400 s, now)``; mes (average,
  minimum and maximum): ``[now - 30 * 86400 s, now)``. Elapsed seconds, not calendar days:
  weekends, holidays and DST changes do not stretch or shrink them.
- dia_anterior: ``[00:00 of D, 00:00 of D + 1)`` in the market's time zone, D being the
  last business day (Monday to Friday, not a holiday) before the local date of ``now``;
  23 or 25 hours long across a DST change. When no sample of the pair with a value
  falls in it, dia_anterior_fallback, ``[now - 172800 s, now - 86400 s)``, takes its place.
- ultimo_ratio_operado / ultimo_timestamp: the pair's newest stored sample whose field is
  not null, in no window.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import cast

from typing_extensions import TypedDict

from cotiza.calendar import MarketCalendar
from cotiza.models import RatioPair, WindowStats

RUEDA = "rueda"
DIA_ANTERIOR = "dia_anterior"
DIA_ANTERIOR_FALLBACK = "dia_anterior_fallback"
SEMANA = "semana"
MES = "mes"
WINDOW_NAMES: tuple[str, ...] = (RUEDA, DIA_ANTERIOR, DIA_ANTERIOR_FALLBACK, SEMANA, MES)

AVERAGE_DECIMALS = 5
PERCENT_DECIMALS = 2

_HOUR = 3600.0
_DAY = 24 * _HOUR


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A half-open interval of epoch seconds: ``start <= asof < end``."""

    start: float
    end: float


@dataclass(frozen=True, slots=True)
class DashboardWindows:
    """The time windows a dashboard refresh aggregates over."""

    rueda: TimeWindow  # the last 24 h
    dia_anterior: TimeWindow  # previous business day, local midnight to midnight
    dia_anterior_fallback: TimeWindow  # 48 h to 24 h ago, used when dia_anterior is empty
    semana: TimeWindow  # the last 7 days
    mes: TimeWindow  # the last 30 days

    def items(self) -> Iterator[tuple[str, float, float]]:
        """Yield ``(name, start, end)`` for every window, in ``WINDOW_NAMES`` order."""
        for name in WINDOW_NAMES:
            window: TimeWindow = getattr(self, name)
            yield name, window.start, window.end


def dashboard_windows(now: float, calendar: MarketCalendar) -> DashboardWindows:
    """The dashboard windows at ``now`` (see the module docstring for the rules)."""
    day_start, day_end = calendar.day_bounds(calendar.previous_business_day(now))
    return DashboardWindows(
        rueda=TimeWindow(now - _DAY, now),
        dia_anterior=TimeWindow(day_start, day_end),
        dia_anterior_fallback=TimeWindow(now - 2 * _DAY, now - _DAY),
        semana=TimeWindow(now - 7 * _DAY, now),
        mes=TimeWindow(now - 30 * _DAY, now),
    )


class DashboardRowData(TypedDict):
    """A ``DashboardRow`` as JSON: the shape of each row of the dashboard table."""

    par: str
    client_id: str
    pair_id: int
    base: str
    quote: str
    ultimo_ratio_operado: float | None
    ultimo_timestamp: str | None
    promedio_rueda: float | None
    promedio_dia_anterior: float | None
    promedio_1semana: float | None
    promedio_1mes: float | None
    minimo_mensual: float | None
    maximo_mensual: float | None
    dif_rueda_pct: float | None
    dif_dia_anterior_pct: float | None
    dif_1semana_pct: float | None
    dif_1mes_pct: float | None
    dif_minimo_pct: float | None
    dif_maximo_pct: float | None
    client_id_result: str


@dataclass(frozen=True, slots=True)
class DashboardRow:
    """One row of the dashboard table; field names are part of the public contract."""

    par: str
    client_id: str
    pair_id: int
    base: str
    quote: str
    ultimo_ratio_operado: float | None
    ultimo_timestamp: str | None
    promedio_rueda: float | None
    promedio_dia_anterior: float | None
    promedio_1semana: float | None
    promedio_1mes: float | None
    minimo_mensual: float | None
    maximo_mensual: float | None
    dif_rueda_pct: float | None
    dif_dia_anterior_pct: float | None
    dif_1semana_pct: float | None
    dif_1mes_pct: float | None
    dif_minimo_pct: float | None
    dif_maximo_pct: float | None
    # The prototype's clients read the client under this name too; always equal to client_id.
    client_id_result: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "client_id_result", self.client_id)

    def as_dict(self) -> DashboardRowData:
        # Same field names as DashboardRowData (a unit test holds the two together).
        return cast(DashboardRowData, asdict(self))


def _round(value: float | None, decimals: int) -> float | None:
    return None if value is None else round(value, decimals)


def _dif_pct(last: float | None, ref: float | None) -> float | None:
    """``(last - ref) / ref · 100`` from unrounded inputs, rounded to 2 decimals."""
    if last is None or ref is None or ref == 0:
        return None
    result = (last - ref) / ref * 100
    return round(result, PERCENT_DECIMALS) if math.isfinite(result) else None


def _window(
    stats: Mapping[str, Mapping[int, WindowStats]], name: str, pair_id: int
) -> WindowStats | None:
    """The stats of one pair in one window, or None when it holds no data."""
    found = stats.get(name, {}).get(pair_id)
    return found if found is not None and found.count > 0 else None


def _mean(window: WindowStats | None) -> float | None:
    return None if window is None else window.mean


def _iso_utc(ts: float) -> str:
    moment = dt.datetime.fromtimestamp(ts, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _build_row(
    pair: RatioPair,
    latest: tuple[float, float] | None,
    stats: Mapping[str, Mapping[int, WindowStats]],
) -> DashboardRow:
    last = latest[1] if latest is not None else None
    rueda = _mean(_window(stats, RUEDA, pair.id))
    previous_day = _window(stats, DIA_ANTERIOR, pair.id)
    if previous_day is None:
        previous_day = _window(stats, DIA_ANTERIOR_FALLBACK, pair.id)
    dia_anterior = _mean(previous_day)
    semana = _mean(_window(stats, SEMANA, pair.id))
    month = _window(stats, MES, pair.id)
    mes = _mean(month)
    minimum = month.minimum if month is not None else None
    maximum = month.maximum if month is not None else None
    return DashboardRow(
        par=pair.name,
        client_id=pair.client_id,
        pair_id=pair.id,
        base=pair.base,
        quote=pair.quote,
        ultimo_ratio_operado=_round(last, AVERAGE_DECIMALS),
        ultimo_timestamp=_iso_utc(latest[0]) if latest is not None else None,
        promedio_rueda=_round(rueda, AVERAGE_DECIMALS),
        promedio_dia_anterior=_round(dia_anterior, AVERAGE_DECIMALS),
        promedio_1semana=_round(semana, AVERAGE_DECIMALS),
        promedio_1mes=_round(mes, AVERAGE_DECIMALS),
        minimo_mensual=_round(minimum, AVERAGE_DECIMALS),
        maximo_mensual=_round(maximum, AVERAGE_DECIMALS),
        dif_rueda_pct=_dif_pct(last, rueda),
        dif_dia_anterior_pct=_dif_pct(last, dia_anterior),
        dif_1semana_pct=_dif_pct(last, semana),
        dif_1mes_pct=_dif_pct(last, mes),
        dif_minimo_pct=_dif_pct(last, minimum),
        dif_maximo_pct=_dif_pct(last, maximum),
    )


def build_dashboard_rows(
    pairs: Sequence[RatioPair],
    latest: Mapping[int, tuple[float, float]],
    stats: Mapping[str, Mapping[int, WindowStats]],
) -> list[DashboardRow]:
    """One row per pair, in input order.

    ``latest`` maps pair id to ``(asof, value)`` of its newest sample; ``stats`` maps each
    window name of ``WINDOW_NAMES`` to pair id to the ``WindowStats`` of the ratio field.
    """
    return [_build_row(pair, latest.get(pair.id), stats) for pair in pairs]
