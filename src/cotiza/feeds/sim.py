"""A seeded, reproducible simulator of Argentine bonds, stocks and futures.

Every price is ``anchor * exp(sum of factor deviations)``: a dozen underlying factors
(official FX, the MEP gap, the canje, the sovereign curve, each stock, the futures carry)
are log-deviations that follow mean-reverting random walks, so the ratios traders watch
(MEP = AL30/AL30D, CCL = GD30/GD30C, canje = AL30D/AL30C, futures carry) move like the real
ones and stay plausible however long the simulation runs.

The sequence of quotes depends only on the seed and the instrument list, never on timing:
a tick advances only the factors that drive the instrument that moves, one step each.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from cotiza.errors import InvalidRequestError
from cotiza.feeds.base import Feed, FeedState, QuoteSink
from cotiza.models import Quote
from cotiza.settings import Settings

logger = logging.getLogger(__name__)

# Factor indices. Each factor is a log-deviation from its anchor, mean-reverting to zero.
_FX, _GAP, _CANJE, _SOV, _AL30, _GD30, _GGAL, _YPFD, _PAMP, _DIC, _ROLL, _GGAL_BASIS = range(12)

# (stationary standard deviation, half-life in steps) per factor, in the order above.
_FACTOR_PARAMS: tuple[tuple[float, float], ...] = (
    (0.005, 50_000),  # official FX: crawls slowly
    (0.010, 20_000),  # MEP gap over the official rate
    (0.004, 5_000),  # canje (CCL over MEP): a fast, narrow spread
    (0.020, 30_000),  # sovereign USD curve shared by AL30 and GD30
    (0.003, 3_000),  # AL30 against the curve
    (0.003, 3_000),  # GD30 against the curve
    (0.030, 30_000),  # GGAL in cable dollars
    (0.030, 30_000),  # YPFD in cable dollars
    (0.030, 30_000),  # PAMP in cable dollars
    (0.003, 10_000),  # carry of DLR/DIC26 over the official rate
    (0.002, 10_000),  # roll from DLR/DIC26 to DLR/ENE27
    (0.005, 10_000),  # basis of GGAL/FEB27 over the stock
)

_OFFICIAL_RATE = 1420.0
_MEP_RATE = 1450.0
_CANJE_RATE = 1.02  # CCL = MEP * 1.02, about 1,479
_DIC_CARRY = 1.04
_ENE_ROLL = 1.015
_GGAL_FEB_BASIS = 1.06
_CI_DISCOUNT_ARS = 0.0008  # one day of peso financing
_CI_DISCOUNT_USD = 0.0001
_MID_NOISE = 0.0004  # full width of the per-quote jitter around the fair price
_TRADE_PROBABILITY = 0.35

_SETTLEMENTS = ("24hs", "CI")

# The run loop wakes at most this often, and spends at most this long per wake-up.
_MIN_WAKE = 0.01
_CPU_BUDGET = 0.005
_CHUNK = 256


class _Spec(NamedTuple):
    """A catalogue entry: how an instrument is priced from the factors."""

    symbol: str
    anchor: float
    up: tuple[int, ...]
    down: tuple[int, ...]
    tick_scale: int  # ticks per currency unit: 100 means a 0.01 tick
    half_spread: float  # relative, before a random 0.5-1.5x multiplier
    lot: int  # upper bound of a quoted size


def _byma(species: str, settlement: str) -> str:
    return f"MERV - XMEV - {species} - {settlement}"


def _tick_scale(price: float) -> int:
    if price < 1_000:
        return 100
    return 2 if price < 20_000 else 1


def _build_catalogue() -> tuple[_Spec, ...]:
    specs: list[_Spec] = []

    def add(
        species: str,
        anchor: float,
        *,
        up: tuple[int, ...],
        down: tuple[int, ...] = (),
        half_spread: float,
        lot: int,
        usd: bool,
    ) -> None:
        for settlement in _SETTLEMENTS:
            ci = settlement == "CI"
            discount = (_CI_DISCOUNT_USD if usd else _CI_DISCOUNT_ARS) if ci else 0.0
            price = anchor * (1.0 - discount)
            specs.append(
                _Spec(
                    _byma(species, settlement),
                    price,
                    up,
                    down,
                    _tick_scale(price),
                    half_spread * (1.5 if ci else 1.0),
                    lot // 2 if ci else lot,
                )
            )

    for species, usd_price, idio in (("AL30", 60.0, _AL30), ("GD30", 62.0, _GD30)):
        curve = (_SOV, idio)
        peso = usd_price * _MEP_RATE
        add(species, peso, up=(*curve, _FX, _GAP), half_spread=0.0008, lot=50_000, usd=False)
        add(f"{species}D", usd_price, up=curve, half_spread=0.0015, lot=20_000, usd=True)
        cable = usd_price / _CANJE_RATE
        add(
            f"{species}C", cable, up=curve, down=(_CANJE,), half_spread=0.0015, lot=20_000, usd=True
        )
    peso_ccl = (_FX, _GAP, _CANJE)  # stock prices in pesos follow the CCL rate
    for species, price, factor in (
        ("GGAL", 6_500.0, _GGAL),
        ("YPFD", 38_000.0, _YPFD),
        ("PAMP", 3_900.0, _PAMP),
    ):
        add(species, price, up=(factor, *peso_ccl), half_spread=0.001, lot=5_000, usd=False)
    dic = _OFFICIAL_RATE * _DIC_CARRY
    ene = dic * _ENE_ROLL
    ggal_feb = 6_500.0 * _GGAL_FEB_BASIS
    for symbol, price, up, lot in (
        ("DLR/DIC26", dic, (_FX, _DIC), 500),
        ("DLR/ENE27", ene, (_FX, _DIC, _ROLL), 300),
        ("GGAL/FEB27", ggal_feb, (_GGAL, *peso_ccl, _GGAL_BASIS), 100),
    ):
        specs.append(_Spec(symbol, price, up, (), _tick_scale(price), 0.0004, lot))
    return tuple(specs)


_CATALOGUE = _build_catalogue()
_SPECS = {spec.symbol: spec for spec in _CATALOGUE}


@dataclass(frozen=True, slots=True)
class SimLevels:
    """The current exchange-rate factors, in pesos per dollar."""

    official: float
    mep: float
    ccl: float

    @property
    def canje(self) -> float:
        """CCL over MEP minus one, as a fraction (0.02 means 2 %)."""
        return self.ccl / self.mep - 1.0


class _Book:
    """The mutable state of one simulated instrument; slots keep a tick cheap."""

    __slots__ = (
        "anchor",
        "cl",
        "down",
        "half_spread",
        "last",
        "last_size",
        "lot",
        "op",
        "scale",
        "symbol",
        "up",
    )

    def __init__(self, spec: _Spec, steps: Sequence[tuple[float, float]]) -> None:
        self.symbol = spec.symbol
        self.anchor = spec.anchor
        # The factor parameters travel with the book so a tick avoids list look-ups.
        self.up = tuple((i, *steps[i]) for i in spec.up)
        self.down = tuple((i, *steps[i]) for i in spec.down)
        self.scale = spec.tick_scale
        self.half_spread = spec.half_spread
        self.lot = spec.lot
        self.last = 0.0
        self.last_size = 0
        self.op = 0.0
        self.cl = 0.0


class SimMarket:
    """The pure simulation core: a seeded market over a fixed list of known symbols."""

    def __init__(self, symbols: Sequence[str], seed: int) -> None:
        self._rng = random.Random(seed)
        gauss = self._rng.gauss
        steps: list[tuple[float, float]] = []
        self._factors: list[float] = []
        close: list[float] = []
        for std, half_life in _FACTOR_PARAMS:
            decay = 0.5 ** (1.0 / half_life)
            # Uniform increments (u - 0.5) have variance 1/12; sums of them are Gaussian
            # anyway, and random() is several times cheaper than gauss().
            amplitude = std * math.sqrt(1.0 - decay * decay) * math.sqrt(12.0)
            steps.append((decay, amplitude))
            today = gauss(0.0, std / 2)
            self._factors.append(today)
            close.append(today + gauss(0.0, std / 2))
        # The open sits between yesterday's close and now, so related instruments (24hs
        # and CI, a bond and its D species) open and close consistently with each other.
        opening = [c + (t - c) * 0.7 for c, t in zip(close, self._factors, strict=True)]
        self._books = [_Book(_SPECS[symbol], steps) for symbol in symbols]
        for book in self._books:
            scale = book.scale
            book.cl = round(self._fair(book, close) * scale) / scale
            book.op = round(self._fair(book, opening) * scale) / scale
            book.last = round(self._fair(book, self._factors) * scale) / scale
            book.last_size = int(self._rng.random() * book.lot) + 1

    @property
    def symbols(self) -> list[str]:
        return [book.symbol for book in self._books]

    def levels(self) -> SimLevels:
        """The official, MEP and CCL rates the simulated prices are built on."""
        f = self._factors
        official = _OFFICIAL_RATE * math.exp(f[_FX])
        mep = _MEP_RATE * math.exp(f[_FX] + f[_GAP])
        return SimLevels(official, mep, mep * _CANJE_RATE * math.exp(f[_CANJE]))

    @staticmethod
    def _fair(book: _Book, f: Sequence[float]) -> float:
        x = sum(f[i] for i, _, _ in book.up) - sum(f[i] for i, _, _ in book.down)
        return book.anchor * math.exp(x)

    def snapshot(self) -> list[Quote]:
        """One quote per instrument, in list order, without advancing the factors."""
        return [self._quote(book, self._fair(book, self._factors)) for book in self._books]

    def generate(self, n: int) -> Iterator[Quote]:
        """The next ``n`` ticks: a random instrument moves its factors one step and quotes."""
        books = self._books
        count = len(books)
        f = self._factors
        rand = self._rng.random
        exp = math.exp
        quote = self._quote
        for _ in range(n):
            book = books[int(rand() * count)]
            x = 0.0
            for i, decay, amplitude in book.up:
                v = f[i] * decay + amplitude * (rand() - 0.5)
                f[i] = v
                x += v
            for i, decay, amplitude in book.down:
                v = f[i] * decay + amplitude * (rand() - 0.5)
                f[i] = v
                x -= v
            yield quote(book, book.anchor * exp(x))

    def _quote(self, book: _Book, fair: float) -> Quote:
        rand = self._rng.random
        mid = fair * (1.0 + _MID_NOISE * (rand() - 0.5))
        half = book.half_spread * (0.5 + rand())
        scale = book.scale
        bid = math.floor(mid * (1.0 - half) * scale)
        offer = math.ceil(mid * (1.0 + half) * scale)
        bid = max(bid, 1)
        offer = max(offer, bid + 1)
        lot = book.lot
        if rand() < _TRADE_PROBABILITY:
            # A trade lifts the offer or hits the bid.
            book.last = (offer if rand() < 0.5 else bid) / scale
            book.last_size = int(rand() * lot) + 1
        now = time.time()
        return Quote(
            book.symbol,
            bid / scale,
            int(rand() * lot) + 1,
            offer / scale,
            int(rand() * lot) + 1,
            book.last,
            book.last_size,
            book.cl,
            book.op,
            int(now * 1000),
            now,
        )


def nominal_half_spread(symbol: str) -> float | None:
    """The simulator's typical half-spread of ``symbol`` as a fraction of its price.

    Each quote draws its half-spread between 0.5x and 1.5x of this; None for unknown symbols.
    """
    spec = _SPECS.get(symbol)
    return None if spec is None else spec.half_spread


class SimFeed(Feed):
    """The simulator behind ``FEED=sim``: ``SIM_TICKS_PER_SECOND`` ticks across instruments."""

    name: ClassVar[str] = "sim"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.market: SimMarket | None = None

    def catalogue(self) -> list[str]:
        return [spec.symbol for spec in _CATALOGUE]

    def select(self, instruments: Sequence[str] = ()) -> SimMarket:
        """Start a fresh seeded market for ``instruments``.

        An empty list falls back to ``FEED_INSTRUMENTS``, then to the whole catalogue.
        Raises ``InvalidRequestError`` naming any symbol the simulator does not know.
        """
        wanted = list(instruments) or list(self.settings.feed_instruments) or self.catalogue()
        unknown = [symbol for symbol in wanted if symbol not in _SPECS]
        if unknown:
            raise InvalidRequestError(
                "unknown instruments for the simulator: " + ", ".join(map(repr, unknown))
            )
        self.market = SimMarket(list(dict.fromkeys(wanted)), self.settings.sim_seed)
        return self.market

    def generate(self, n: int) -> Iterator[Quote]:
        """The next ``n`` ticks of the current market (the default selection if none)."""
        market = self.market or self.select()
        return market.generate(n)

    async def run(self, instruments: Sequence[str], sink: QuoteSink) -> None:
        market = self.select(instruments)
        rate = self.settings.sim_ticks_per_second
        stats = self.stats
        loop = asyncio.get_running_loop()
        self.connected_at = time.time()
        self.state = FeedState.CONNECTED
        logger.info(
            "sim feed running: %d instruments, %g ticks/s, seed %d",
            len(market.symbols),
            rate,
            self.settings.sim_seed,
        )
        try:
            snapshot = market.snapshot()
            for quote in snapshot:
                sink(quote)
            stats.frames += 1
            stats.quotes += len(snapshot)
            last = loop.time()
            due = 0.0  # ticks owed, carrying the fraction between wake-ups
            while True:
                await asyncio.sleep(max(_MIN_WAKE, (1.0 - due) / rate))
                now = loop.time()
                due += (now - last) * rate
                last = now
                owed = int(due)
                due -= owed
                sent = self._deliver(market, owed, sink)
                if sent < owed:
                    self._fall_behind(owed - sent)
        except asyncio.CancelledError:
            self.state = FeedState.STOPPED
            logger.info("sim feed stopped after %d quotes", stats.quotes)
            raise

    def _deliver(self, market: SimMarket, owed: int, sink: QuoteSink) -> int:
        """Emit up to ``owed`` ticks in chunks, stopping once the CPU budget is spent."""
        deadline = time.perf_counter() + _CPU_BUDGET
        sent = 0
        while sent < owed:
            chunk = min(_CHUNK, owed - sent)
            for quote in market.generate(chunk):
                sink(quote)
            sent += chunk
            if time.perf_counter() > deadline:
                break
        if sent:
            self.stats.frames += 1
            self.stats.quotes += sent
        return sent

    def _fall_behind(self, skipped: int) -> None:
        # Dropping the backlog keeps the event loop responsive; a catch-up burst would not.
        extra = self.stats.extra
        if not extra.get("skipped_ticks"):
            logger.warning(
                "sim feed cannot sustain %g ticks/s; skipping ticks to stay responsive",
                self.settings.sim_ticks_per_second,
            )
        extra["skipped_ticks"] = extra.get("skipped_ticks", 0.0) + skipped
