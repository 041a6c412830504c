"""What a follower does with the leader's stream, and the fenced history writer.

The sink runs against real components (a standalone service on SQLite, feed not
started); the fence against a real lease row in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cotiza.cluster.envelope import BusMessage, Kind, Publication, Snapshot, decode, encode
from cotiza.cluster.pglease import PgLease
from cotiza.cluster.sink import (
    BackplaneSink,
    alert_publication,
    dashboard_publication,
    quote_of,
    sample_of,
    sample_publication,
    tick_publication,
)
from cotiza.models import Indicators, Quote, RatioSample, RatioValues
from cotiza.service import Services, run_services
from cotiza.settings import Settings
from cotiza.storage.database import Database
from cotiza.storage.tables import ratio_samples, ticks
from cotiza.storage.writer import Writer
from cotiza.ws.frames import Wire

AL30, AL30D = "MERV - XMEV - AL30 - 24hs", "MERV - XMEV - AL30D - 24hs"


def quote(symbol: str, bid: float, recv_ts: float) -> Quote:
    return Quote(symbol, bid, 10.0, bid + 1, 12.0, bid + 0.5, 3.0, bid, bid, 1_700_000, recv_ts)


def over_the_wire(item: Publication, epoch: int = 1, seq: int = 1) -> BusMessage:
    """The envelope exactly as a follower decodes it from Redis."""
    return decode(encode(epoch, seq, time.time_ns(), item), time.time_ns())


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'cotiza.db'}",
        feed_autostart=False,
        market_hours="always",
        ratio_publish_interval=0,
    )
    async with run_services(settings) as running:
        yield running


def test_tick_and_sample_codecs_round_trip() -> None:
    """A tick keeps every field and its receive time; a sample keeps values and indicators."""
    original = quote(AL30, 100.5, 1_700_000_000.25)
    message = over_the_wire(tick_publication(original))
    assert message.kind is Kind.TICK and message.key == AL30
    assert quote_of(message) == original
    sample = RatioSample(
        3, 1_700_000_001.5, RatioValues(1.0, 2.0, 1.5, None), Indicators(sma180_mid=1.4)
    )
    message = over_the_wire(sample_publication(sample))
    assert (message.kind, message.key) == (Kind.SAMPLE, "3")
    assert sample_of(message) == sample


async def test_the_sink_applies_ticks_samples_and_dashboard_without_going_backwards(
    services: Services,
) -> None:
    """Ticks reach the cache (and its listeners), never an older one over a newer one;
    a sample advances the pair's window once, however often it is replayed."""
    relayed: list[Wire] = []
    alerts: list[Wire] = []
    sink = BackplaneSink(services.cache, services.ratios, relayed.append, alerts.append)
    pushed: list[Quote] = []
    services.cache.add_listener(pushed.append)
    now = time.time()
    newer, older = quote(AL30, 101.0, now), quote(AL30, 99.0, now - 5)
    sink.apply(over_the_wire(tick_publication(newer), seq=1))
    sink.apply(over_the_wire(tick_publication(older), seq=2))
    assert services.cache.get(AL30) == newer and pushed == [newer]

    pair = next(p for p in services.ratios.pairs.values() if p.base == AL30 and p.quote == AL30D)
    sample = RatioSample(pair.id, now, RatioValues(1.01, 1.02, 1.015, 1.0), Indicators())
    message = over_the_wire(sample_publication(sample), seq=3)
    sink.apply(message)
    assert services.ratios.last_samples[pair.id] == sample
    snapshot = Snapshot(None, {Kind.TICK: {AL30: over_the_wire(tick_publication(newer))}})
    sink.resync(snapshot)
    sink.resync(Snapshot(None, {Kind.SAMPLE: {str(pair.id): message}}))
    assert not services.ratios.apply_sample(sample)  # already counted: not pushed again
    assert pushed == [newer]

    frame = Wire(b'{"type":"dashboard_data","status":"success","data":[],"count":0}')
    sink.apply(over_the_wire(dashboard_publication(frame), seq=4))
    assert [w.data for w in relayed] == [frame.data]

    alert = Wire(b'{"type":"alert","rule_id":1}')
    sink.apply(over_the_wire(alert_publication(alert, 1), seq=5))
    sink.apply(over_the_wire(alert_publication(alert, 2), seq=6))
    sink.apply(over_the_wire(Publication(Kind.CONTROL, "handover", ""), seq=7))
    assert [w.data for w in alerts] == [alert.data, alert.data]  # events: each one relayed

    sink.apply(BusMessage(1, 8, time.time_ns(), Kind.TICK, AL30, "{not json"))
    assert sink.invalid == 1 and services.cache.get(AL30) == newer  # skipped, nothing lost


@pytest.mark.postgres
@pytest.mark.cluster
async def test_the_writer_stores_only_under_a_held_lease_and_discards_a_lost_terms_rows(
    fresh_pg_url: str,
) -> None:
    """Every write transaction checks the lease row: rows of a term that is over are
    rolled back and discarded (never retried), and the keeper is told."""
    database = Database(fresh_pg_url)
    await database.start()
    settings = Settings(database_url=fresh_pg_url, write_flush_interval=0.01)
    writer = Writer(database, settings)
    lease = PgLease(database.engine, "node-a", None, ttl=1.0)
    fenced: list[str] = []
    writer.fence, writer.on_fenced = lease.fence, fenced.append
    await writer.start()
    try:
        await lease.campaign()
        assert lease.epoch == 1
        writer.submit_tick(quote(AL30, 100.0, time.time()))
        await writer.flush()
        assert await count(database, ticks) == 1 and not fenced

        # node-a stops renewing (frozen, say); its term expires and node-b's begins.
        await asyncio.sleep(1.3)
        other = PgLease(database.engine, "node-b", None, ttl=30)
        assert (await other.campaign()).holder == "node-b" and other.epoch == 2
        assert lease.epoch == 1  # node-a has not noticed
        writer.submit_tick(quote(AL30, 101.0, time.time()))
        await writer.flush()
        assert await count(database, ticks) == 1
        assert await count(database, ratio_samples) == 0
        assert len(fenced) == 1 and "epoch 1" in fenced[0]
        assert writer.stats.fenced == 1 and writer.stats.consecutive_failures == 0
    finally:
        await writer.stop(5)
        await database.stop()


async def count(database: Database, table: object) -> int:
    async with database.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]
