"""The whole service with FEED=primary against the fake Primary server, end to end."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from primary_kit import AL30, DIC26, FAST_PRIMARY
from sqlalchemy import func, select
from support.poll import eventually
from support.server import LiveService, live_service
from support.settings import FAST
from support.wsclient import recv_until, send_json, ws_client

from cotiza.fake_primary import FakePrimary
from cotiza.feeds.base import FeedState
from cotiza.feeds.primary import PrimaryFeed
from cotiza.feeds.primary_frames import md_frame
from cotiza.feeds.sim import SimFeed
from cotiza.models import Quote
from cotiza.settings import Settings
from cotiza.storage.tables import ratio_samples

pytestmark = pytest.mark.live


def service_settings(fake: FakePrimary, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        **FAST,
        **FAST_PRIMARY,
        "primary_env": fake.url,
        "feed_instruments": [AL30, DIC26],
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/cotiza.db",
        "host": "127.0.0.1",
        "port": 0,
    }
    return Settings(**{**values, **overrides})


async def cached(live: LiveService, symbol: str, timeout: float = 5.0) -> None:
    """Wait until the service's cache holds a quote of ``symbol``."""
    cache = live.services.cache
    arrived = asyncio.Event()

    def listener(quote: Quote) -> None:
        if quote.symbol == symbol:
            arrived.set()

    cache.add_listener(listener)
    try:
        if cache.get(symbol) is None:
            await asyncio.wait_for(arrived.wait(), timeout)
    finally:
        cache.remove_listener(listener)


async def feed_status(live: LiveService) -> dict[str, Any]:
    async with live.http() as http:
        body: dict[str, Any] = (await http.get("/cotizaciones/status")).json()
    return body


async def test_service_streams_primary_ticks_and_survives_a_drop(
    fake: FakePrimary, tmp_path: Path
) -> None:
    """Ticks from the fake reach a WebSocket client, before and after an upstream drop."""
    async with live_service(service_settings(fake, tmp_path)) as live, ws_client(live) as ws:
        await send_json(ws, {"type": "subscribe", "instruments": [AL30]})
        await recv_until(ws, lambda m: m.get("type") == "subscribed")
        tick = await recv_until(ws, lambda m: m.get("type") == "tick" and m["symbol"] == AL30)
        assert tick["bid"] > 0 and tick["offer"] > tick["bid"]

        fake.drop_all()
        await fake.wait_until(lambda: fake.subscriptions(2) == [AL30, DIC26])
        await recv_until(ws, lambda m: m.get("type") == "tick" and m["symbol"] == AL30)
        status = await feed_status(live)
        assert status["feed"] == "primary" and status["connection"] == "connected"
        assert status["reconnects"] == 1
        async with live.http() as http:
            metrics = (await http.get("/metrics")).text
        assert "cotiza_feed_reconnects_total 1.0" in metrics
        assert "cotiza_feed_connected 1.0" in metrics


async def test_service_reports_an_upstream_outage_and_marks_quotes_stale(
    fake: FakePrimary, tmp_path: Path
) -> None:
    """While Primary is unreachable, health warns, status says reconnecting, quotes are stale
    and ratios built on them are null."""
    async with live_service(service_settings(fake, tmp_path)) as live:
        feed = live.services.feed.feed
        assert feed is not None
        async with live.http() as http:
            await cached(live, DIC26)
            await cached(live, AL30)
            assert (await http.get(f"/api/quotes/{DIC26}")).json()["stale"] is False
            created = await http.post("/api/ratios/pairs", json={"base": AL30, "quote": DIC26})
            pair_id = created.json()["id"]

            async def mid_ratio() -> float | None:
                data = (await http.get("/api/ratios")).json()["data"]
                value: float | None = next(r for r in data if r["pair_id"] == pair_id)["mid_ratio"]
                return value

            assert await mid_ratio() is not None

            fake.faults.unavailable = True
            fake.drop_all()
            await fake.wait_until(lambda: len(fake.handshakes) >= 3)
            assert (await feed_status(live))["connection"] == "reconnecting"
            detailed = (await http.get("/health/detailed")).json()
            state = detailed["checks"]["feed:state"][0]
            assert state["status"] == "warn" and state["observedValue"] == "reconnecting"
            assert (await http.get(f"/api/quotes/{DIC26}")).json()["stale"] is True
            assert await mid_ratio() is None

            fake.faults.unavailable = False
            await fake.wait_until(lambda: 2 in fake.opened)
            await fake.wait_until(lambda: fake.subscriptions(2) == [AL30, DIC26])


async def test_no_sample_is_stored_while_primary_is_unreachable(
    fake: FakePrimary, tmp_path: Path
) -> None:
    """During an upstream outage the sampler stores nothing; after the reconnect it resumes."""
    async with live_service(service_settings(fake, tmp_path, quote_stale_after=300.0)) as live:
        services = live.services
        feed = services.feed.feed
        assert isinstance(feed, PrimaryFeed)
        async with live.http() as http:
            created = await http.post("/api/ratios/pairs", json={"base": AL30, "quote": DIC26})
            pair_id = created.json()["id"]

        async def stored_since(since: float) -> int:
            query = select(func.count()).where(
                ratio_samples.c.pair_id == pair_id, ratio_samples.c.asof >= since
            )
            async with services.database.engine.connect() as conn:
                return int(await conn.scalar(query) or 0)

        await eventually(lambda: stored_since(0.0), timeout=30, message="samples before")
        fake.faults.unavailable = True
        fake.drop_all()
        await feed.wait_for_state(FeedState.RECONNECTING)
        lost_at = feed.disconnected_at
        assert lost_at is not None and services.feed.live_since is None
        await fake.wait_until(lambda: len(fake.handshakes) >= 3)
        rounds = services.ratios.sample_rounds + 6
        await eventually(lambda: services.ratios.sample_rounds >= rounds, timeout=30)
        await services.writer.flush()
        assert await stored_since(lost_at) == 0

        fake.faults.unavailable = False
        await feed.wait_for_state(FeedState.CONNECTED, timeout=10)
        connected_at = services.feed.live_since
        assert connected_at is not None and connected_at > lost_at
        await eventually(lambda: stored_since(connected_at), timeout=30, message="samples after")
        assert await stored_since(lost_at) == await stored_since(connected_at)


async def test_service_with_bad_credentials_reports_a_failed_feed(
    fake: FakePrimary, tmp_path: Path
) -> None:
    """Wrong credentials fail the feed once, visibly, and the service itself stays up."""
    settings = service_settings(fake, tmp_path, primary_password="s3cr3t-wrong")
    async with live_service(settings) as live, live.http() as http:
        feed = live.services.feed.feed
        assert isinstance(feed, PrimaryFeed)
        await feed.wait_for_state(FeedState.FAILED)
        body = (await http.get("/health/detailed")).json()
        check = body["checks"]["feed:state"][0]
        assert check["status"] == "fail"
        assert "PRIMARY_PASSWORD" in check["output"] and "s3cr3t" not in check["output"]
        assert "s3cr3t" not in (await http.get("/cotizaciones/status")).text
        assert len(fake.auth_attempts) == 1
        assert (await http.get("/cotizaciones/health")).status_code == 200


async def test_service_plays_a_recording_with_feed_replay(tmp_path: Path) -> None:
    """FEED=replay with REPLAY_LOOP plays a recording into the service's WebSocket ticks."""
    recording = tmp_path / "session.ndjson.gz"
    quotes = list(SimFeed(Settings(sim_seed=9, feed_instruments=[AL30, DIC26])).generate(40))
    lines = [
        orjson.dumps({"recv_ns": 1_000_000_000 + i * 10_000_000, "frame": md_frame(q)})
        for i, q in enumerate(quotes)
    ]
    recording.write_bytes(gzip.compress(b"\n".join(lines)))
    settings = Settings(
        **{**FAST, "feed": "replay", "replay_file": recording, "replay_loop": True},
        database_url=f"sqlite+aiosqlite:///{tmp_path}/cotiza.db",
        host="127.0.0.1",
        port=0,
    )
    async with live_service(settings) as live, ws_client(live) as ws:
        await send_json(ws, {"type": "subscribe", "instruments": [DIC26]})
        tick = await recv_until(ws, lambda m: m.get("type") == "tick" and m["symbol"] == DIC26)
        recorded = {(q.bid, q.offer) for q in quotes if q.symbol == DIC26}
        assert (tick["bid"], tick["offer"]) in recorded
        status = await feed_status(live)
        assert status["feed"] == "replay" and status["connection"] == "connected"
