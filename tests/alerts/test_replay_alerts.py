"""Edge-triggering, hysteresis and cooldown on a replayed recording, end to end."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from alerts_kit import create_rule, wait_history
from support.poll import eventually
from support.server import live_service
from support.wsclient import collect, recv_until, send_json, ws_client

from cotiza.feed_runner import RunnerState
from cotiza.feeds.primary_frames import md_frame
from cotiza.models import Quote
from cotiza.settings import Settings

pytestmark = pytest.mark.live

AL30 = "MERV - XMEV - AL30 - 24hs"
AL30D = "MERV - XMEV - AL30D - 24hs"

# The path of AL30's mid price against an AL30D whose mid stays 1.0, so this is the path
# of the MEP pair's mid_ratio; None is a book with nothing in it (a null ratio).
PATH: list[float | None] = [100.0, 102.0, 100.5, None, 102.0, 99.5, 102.0, 99.8, 101.5]


def quote(symbol: str, mid: float | None, ts_ms: int) -> Quote:
    if mid is None:
        return Quote(symbol, None, None, None, None, None, None, None, None, ts_ms, 0.0)
    return Quote(symbol, mid - 0.01, 10.0, mid + 0.01, 10.0, mid, 1.0, None, None, ts_ms, 0.0)


def write_recording(path: Path) -> None:
    start_ns = time.time_ns()
    frames = [md_frame(quote(AL30D, 1.0, 1))]
    frames += [md_frame(quote(AL30, mid, i + 2)) for i, mid in enumerate(PATH)]
    lines = [
        orjson.dumps({"recv_ns": start_ns + i * 1_000_000, "frame": frame})
        for i, frame in enumerate(frames)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")


async def test_replayed_path_gives_exactly_the_expected_firings(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Crossings fire once, a retreat smaller than the hysteresis does not re-arm, nulls do
    nothing, and a long cooldown holds a re-armed rule back."""
    recording = tmp_path / "path.ndjson"
    write_recording(recording)
    settings = make_settings(
        feed="replay",
        replay_file=recording,
        replay_speed=0.0,
        replay_yield_every=1,  # every frame is evaluated on its own, whatever the load
        ratio_publish_interval=0.0,
        feed_autostart=False,
    )
    async with live_service(settings) as live, ws_client(live) as ws:
        await send_json(ws, {"type": "subscribe_alerts"})
        await recv_until(ws, lambda m: m["type"] == "alerts_subscribed")
        above = await create_rule(
            live, field="mid_ratio", op=">", value=101.0, hysteresis=1.0, cooldown_s=0
        )
        below = await create_rule(
            live, field="mid_ratio", op="crosses_below", value=100.0, hysteresis=0.5, cooldown_s=0
        )
        held = await create_rule(
            live, field="mid_ratio", op=">", value=101.0, hysteresis=1.0, cooldown_s=3600
        )
        async with live.http() as http:
            assert (await http.post("/cotizaciones/iniciar")).status_code == 200
        feed = live.services.feed
        await eventually(
            lambda: feed.state is RunnerState.STOPPED and feed.feed is not None,
            message="the replay played to the end",
        )
        assert feed.feed is not None and feed.feed.stats.quotes == len(PATH) + 1

        firings = await wait_history(live, 6)
        observed: dict[int, list[float]] = {}
        for firing in reversed(firings):  # oldest first
            observed.setdefault(firing["rule_id"], []).append(firing["observed"])
        assert observed[above["id"]] == pytest.approx([102.0, 102.0, 101.5])
        assert observed[below["id"]] == pytest.approx([99.5, 99.8])
        assert observed[held["id"]] == pytest.approx([102.0])
        assert len(firings) == 6
        crossing = [f for f in firings if f["rule_id"] == below["id"]]
        assert [f["previous"] for f in reversed(crossing)] == pytest.approx([102.0, 102.0])

        engine = live.services.alerts
        assert engine.evaluators[held["id"]].suppressed == 2  # met twice within the cooldown
        assert engine.stats.fired == 6

        frames = [f for f in await collect(ws, 0.5) if f["type"] == "alert"]
        assert sorted(f["id"] for f in frames) == sorted(f["id"] for f in firings)
