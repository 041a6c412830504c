"""Fixtures of the storage tests: a started database, settings and sample factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from support.settings import settings_factory

from cotiza.models import Indicators, Quote, RatioSample, RatioValues
from cotiza.settings import Settings
from cotiza.storage.database import Database


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """A started, migrated database of each dialect."""
    db = Database(db_url)
    await db.start()
    try:
        yield db
    finally:
        await db.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each dialect that the test may migrate up and down."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    url: str = request.getfixturevalue("fresh_pg_url")
    return url


@pytest.fixture
def make_settings(tmp_path: Path, db_url: str) -> Callable[..., Settings]:
    """The generic ``make_settings`` on ``db_url``, with fast writer timings."""
    return settings_factory(
        tmp_path,
        database_url=db_url,
        write_flush_interval=0.02,
        write_retry_base=0.01,
        write_retry_max=0.05,
        write_batch_size=50,
    )


def _sample(
    pair_id: int,
    asof: float,
    mid: float | None,
    *,
    spread: float = 0.02,
    last: float | None = None,
    sma: float | None = None,
) -> RatioSample:
    """A sample around ``mid`` with the bid and ask ``spread`` apart."""
    bid = None if mid is None else mid - spread / 2
    ask = None if mid is None else mid + spread / 2
    return RatioSample(
        pair_id=pair_id,
        asof=asof,
        values=RatioValues(bid_ratio=bid, ask_ratio=ask, mid_ratio=mid, last_ratio=last),
        indicators=Indicators(
            sma180_mid=sma,
            band_upper=None if sma is None else sma + 1,
            band_lower=None if sma is None else sma - 1,
            ratio_spread=None if mid is None else spread,
        ),
    )


def _quote(symbol: str, ts: float, price: float = 100.0) -> Quote:
    """A quote of ``symbol`` received at ``ts``."""
    return Quote(
        symbol=symbol,
        bid=price - 0.5,
        bid_size=10.0,
        offer=price + 0.5,
        offer_size=12.0,
        last=price,
        last_size=1.0,
        cl=price - 1,
        op=price - 2,
        ts_ms=int(ts * 1000),
        recv_ts=ts,
    )


@pytest.fixture
def make_sample() -> Callable[..., RatioSample]:
    """Factory of ratio samples: ``make_sample(pair_id, asof, mid, ...)``."""
    return _sample


@pytest.fixture
def make_quote() -> Callable[..., Quote]:
    """Factory of quotes: ``make_quote(symbol, ts, price)``."""
    return _quote
