"""Market engines of the fake Primary server, and its instrument catalogue.

An engine keeps the latest ``Md`` frame of each instrument and publishes every change;
``SimEngine`` drives the seeded simulator, ``ReplayEngine`` plays a recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from typing_extensions import TypedDict

from cotiza.feeds.primary_frames import DEFAULT_MARKET_ID, Frame, InstrumentId, md_frame
from cotiza.feeds.recording import RecordingReader
from cotiza.feeds.sim import SimFeed, SimMarket
from cotiza.settings import Settings

Publish = Callable[[str, Frame], None]


class Listing(TypedDict):
    """An instrument as ``rest/instruments/all`` lists it."""

    instrumentId: InstrumentId
    cficode: str


class Segment(TypedDict):
    marketSegmentId: str
    marketId: str


class Detail(Listing):
    """An instrument as ``rest/instruments/detail`` describes it."""

    segment: Segment
    currency: str
    minPriceIncrement: float
    contractMultiplier: float
    priceConvertionFactor: float
    maturityDate: str
    lowLimitPrice: float
    highLimitPrice: float
    minTradeVol: float
    maxTradeVol: float
    instrumentPricePrecision: int
    instrumentSizePrecision: int
    tickSize: float


@dataclass(frozen=True, slots=True)
class Instrument:
    """A listed instrument: what ``rest/instruments/*`` describes."""

    symbol: str
    market_id: str = DEFAULT_MARKET_ID
    cficode: str = ""

    @property
    def is_future(self) -> bool:
        return "/" in self.symbol and not self.symbol.startswith("MERV")

    def listing(self) -> Listing:
        return {
            "instrumentId": {"marketId": self.market_id, "symbol": self.symbol},
            "cficode": self.cficode or ("FXXXSX" if self.is_future else "DBXXXX"),
        }

    def detail(self) -> Detail:
        species = self.symbol.split(" - ")[2] if self.symbol.startswith("MERV") else ""
        usd = species.endswith(("D", "C")) and len(species) > 3
        return {
            **self.listing(),
            "segment": {
                "marketSegmentId": "DDF" if self.is_future else "MERV",
                "marketId": self.market_id,
            },
            "currency": "USD" if usd else "ARS",
            "minPriceIncrement": 0.5 if self.is_future else 0.01,
            "contractMultiplier": 1000.0 if self.is_future else 1.0,
            "priceConvertionFactor": 1.0 if self.is_future else 0.01,
            "maturityDate": "20261231" if self.is_future else "",
            "lowLimitPrice": 0.0,
            "highLimitPrice": 1e12,
            "minTradeVol": 1.0,
            "maxTradeVol": 1e6,
            "instrumentPricePrecision": 3 if self.is_future else 2,
            "instrumentSizePrecision": 0,
            "tickSize": 1.0,
        }


def sim_instruments() -> list[Instrument]:
    """The simulator's whole catalogue as listed instruments."""
    return [Instrument(symbol) for symbol in SimFeed(_settings()).catalogue()]


def load_instruments(path: Path) -> list[Instrument]:
    """Instruments from a JSON list (symbols or objects) or a text file, one symbol a line."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        items = json.loads(text)
        result = []
        for item in items:
            if isinstance(item, str):
                result.append(Instrument(item))
            else:
                result.append(
                    Instrument(
                        str(item["symbol"]),
                        str(item.get("marketId", DEFAULT_MARKET_ID)),
                        str(item.get("cficode", "")),
                    )
                )
        return result
    lines = (line.strip() for line in text.splitlines())
    return [Instrument(line) for line in lines if line and not line.startswith("#")]


class MarketEngine(Protocol):
    def latest(self, symbol: str) -> Frame | None:
        """The current ``Md`` frame of ``symbol``, if it ever traded."""

    def burst(self, symbols: Sequence[str], count: int) -> Iterator[Frame]:
        """``count`` fresh frames for ``symbols`` (symbols the engine does not know skipped)."""

    async def run(self, publish: Publish) -> None:
        """Publish changes until cancelled."""


class SimEngine:
    """The seeded simulator quoting every instrument of its catalogue that is listed."""

    def __init__(self, symbols: Sequence[str], seed: int = 42, rate: float = 20.0) -> None:
        known = set(SimFeed(_settings()).catalogue())
        self.symbols = [s for s in dict.fromkeys(symbols) if s in known]
        self.rate = rate
        self.market = SimMarket(self.symbols, seed) if self.symbols else None
        self._latest: dict[str, Frame] = {}
        if self.market is not None:
            for quote in self.market.snapshot():
                self._latest[quote.symbol] = md_frame(quote)

    def latest(self, symbol: str) -> Frame | None:
        return self._latest.get(symbol)

    def burst(self, symbols: Sequence[str], count: int) -> Iterator[Frame]:
        wanted = [s for s in symbols if s in self._latest]
        if not wanted:
            return
        # A separate market so a burst does not disturb the seeded sequence of the stream.
        market = SimMarket(wanted, seed=len(wanted))
        for quote in market.generate(count):
            frame = md_frame(quote)
            self._latest[quote.symbol] = frame
            yield frame

    async def run(self, publish: Publish) -> None:
        market = self.market
        if market is None:
            await asyncio.Event().wait()  # nothing to quote: idle until cancelled
            return
        loop = asyncio.get_running_loop()
        last = loop.time()
        owed = 0.0
        while True:
            await asyncio.sleep(max(0.005, (1.0 - owed) / self.rate))
            now = loop.time()
            owed += (now - last) * self.rate
            last = now
            due = min(int(owed), 1000)  # after a stall, skip rather than flood
            owed = min(owed - int(owed), 1.0)
            for quote in market.generate(due):
                frame = md_frame(quote)
                self._latest[quote.symbol] = frame
                publish(quote.symbol, frame)


class ReplayEngine:
    """Plays the ``Md`` frames of a recording, with its recorded gaps scaled by ``speed``."""

    def __init__(self, path: Path, speed: float = 1.0, loop: bool = True) -> None:
        self.path = path
        self.speed = speed
        self.loop = loop
        self._latest: dict[str, Frame] = {}
        self._frames: list[tuple[int, Frame]] = []

    async def load(self) -> list[str]:
        """Read the recording; the symbols it quotes."""
        reader = RecordingReader(self.path)
        async with contextlib.aclosing(reader.batches()) as batches:
            async for batch in batches:
                for item in batch:
                    frame = item.frame
                    if isinstance(frame, dict) and str(frame.get("type", "")).lower() == "md":
                        self._frames.append((item.recv_ns, frame))
        for _, frame in self._frames:
            symbol = _symbol(frame)
            if symbol and symbol not in self._latest:
                self._latest[symbol] = frame
        return list(self._latest)

    def latest(self, symbol: str) -> Frame | None:
        return self._latest.get(symbol)

    def burst(self, symbols: Sequence[str], count: int) -> Iterator[Frame]:
        wanted = set(symbols)
        frames = [f for _, f in self._frames if _symbol(f) in wanted]
        for frame in itertools.islice(itertools.cycle(frames), count):
            yield {**frame, "timestamp": int(time.time() * 1000)}

    async def run(self, publish: Publish) -> None:
        loop = asyncio.get_running_loop()
        while self._frames:
            start, first = loop.time(), self._frames[0][0]
            for index, (recv_ns, frame) in enumerate(self._frames):
                if self.speed > 0:
                    delay = start + (recv_ns - first) / 1e9 / self.speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif index % 200 == 0:
                    await asyncio.sleep(0)
                symbol = _symbol(frame)
                if symbol:
                    self._latest[symbol] = frame
                    publish(symbol, frame)
            if not self.loop:
                break
        await asyncio.Event().wait()


def _symbol(frame: Frame) -> str | None:
    instrument = frame.get("instrumentId")
    if isinstance(instrument, dict) and isinstance(instrument.get("symbol"), str):
        return str(instrument["symbol"])
    return None


def _settings() -> Settings:
    # Built without reading the environment: only the simulator's catalogue is needed.
    return Settings.model_construct()


def no_data(symbol: str, market: str) -> Frame:
    """The Md frame Primary sends for an instrument without any market data yet."""
    entries = {"BI": None, "OF": None, "LA": None, "OP": None, "CL": None}
    return {
        "type": "Md",
        "timestamp": int(time.time() * 1000),
        "instrumentId": {"marketId": market, "symbol": symbol},
        "marketData": entries,
    }
