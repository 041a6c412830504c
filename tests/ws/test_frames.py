"""Outbound frames: the wire JSON of each builder, and the bytes a Wire carries."""

from __future__ import annotations

import json
from dataclasses import asdict, fields

import orjson
import pytest
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from cotiza.models import Indicators, Quote, RatioPair, RatioValues
from cotiza.ws import frames
from cotiza.ws.frames import Wire, encode

AL30 = "MERV - XMEV - AL30 - 24hs"
AL30D = "MERV - XMEV - AL30D - 24hs"
QUOTE = Quote(AL30, 800.5, 10.0, 801.0, 5.0, 800.75, 1.0, 799.0, 800.0, 1_767_000_000_123, 1.5)


def wire_json(frame: frames.OutboundFrame) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(encode(frame).data)
    return decoded


def test_tick_frame_is_the_quote_s_public_fields() -> None:
    """A tick is ``type`` followed by exactly the quote fields of the contract, in order."""
    sent = encode(frames.tick(QUOTE)).data
    assert sent == orjson.dumps({"type": "tick", **QUOTE.tick_payload()})
    assert list(json.loads(sent)) == [
        "type",
        "symbol",
        "bid",
        "bid_size",
        "offer",
        "offer_size",
        "last",
        "last_size",
        "cl",
        "op",
        "ts_ms",
    ]


def test_ratio_frame_flattens_pair_values_and_indicators() -> None:
    """A ratio frame carries the pair, every ratio value and every indicator, flat."""
    pair = RatioPair(7, AL30, AL30D, factor=1.0, client_id="mesa")
    values = RatioValues(1.01, 1.03, 1.02, None)
    indicators = Indicators(sma180_mid=1.0, z_bid=-0.5)
    frame = frames.ratio(pair, 1_767_000_000.25, values, indicators)
    expected = {
        "type": "ratio",
        "pair_id": 7,
        "par": "AL30-AL30D",
        "base": AL30,
        "quote": AL30D,
        "factor": 1.0,
        "client_id": "mesa",
        "asof": 1_767_000_000.25,
        **asdict(values),
        **asdict(indicators),
    }
    assert encode(frame).data == orjson.dumps(expected)
    names = {f.name for f in fields(RatioValues)} | {f.name for f in fields(Indicators)}
    assert names <= frame.keys()


def test_error_frame_names_the_command_only_when_there_is_one() -> None:
    """``command`` sits between message and timestamp when given and is absent otherwise."""
    assert list(wire_json(frames.error("invalid JSON"))) == ["type", "message", "timestamp"]
    named = wire_json(frames.error("unknown pairs: X", "subscribe_ratios"))
    assert list(named) == ["type", "message", "command", "timestamp"]
    assert named["command"] == "subscribe_ratios"


def test_subscribed_lists_unknown_symbols_only_when_there_are_some() -> None:
    """``unknown`` appears only when some subscribed symbol is known to no feed."""
    assert wire_json(frames.subscribed([AL30], [])) == {"type": "subscribed", "instruments": [AL30]}
    assert wire_json(frames.subscribed([AL30, "X"], ["X"])) == {
        "type": "subscribed",
        "instruments": [AL30, "X"],
        "unknown": ["X"],
    }


def test_dashboard_data_keeps_the_table_and_adds_a_timestamp() -> None:
    """dashboard_data is the query's table with type first and a timestamp last."""
    table: frames.DashboardTable = {
        "status": "success",
        "data": [{"par": "AL30-AL30D", "client_id": "default", "promedio_rueda": 1.02}],
        "count": 1,
        "query_time_ms": 3.5,
        "method": "aggregates",
        "freshness": "real-time",
    }
    sent = wire_json(frames.dashboard_data(table))
    assert list(sent) == [
        "type",
        "status",
        "data",
        "count",
        "query_time_ms",
        "method",
        "freshness",
        "timestamp",
    ]
    assert {k: sent[k] for k in table} == table


@pytest.mark.parametrize(
    ("frame", "keys"),
    [
        (frames.connection(), ["type", "status", "message", "timestamp"]),
        (frames.pong(), ["type", "action", "timestamp"]),
        (frames.ping(), ["type", "timestamp"]),
        (frames.unsubscribed([AL30]), ["type", "instruments"]),
        (frames.ratio_subscribed([1, 2]), ["type", "pairs"]),
        (frames.ratio_unsubscribed(), ["type"]),
        (
            frames.dashboard_subscribed(10.0),
            ["type", "message", "refresh_interval", "timestamp"],
        ),
        (frames.dashboard_unsubscribed(), ["type", "message", "timestamp"]),
        (frames.dashboard_error(), ["type", "status", "message", "error", "timestamp"]),
    ],
)
def test_reply_frames_carry_their_contract_fields(
    frame: frames.OutboundFrame, keys: list[str]
) -> None:
    """Each reply has exactly its contract fields, ``type`` first."""
    assert list(wire_json(frame)) == keys


def test_status_frame_spreads_the_hub_counts() -> None:
    """The status frame carries the hub's counts, the worker and feed state, sorted symbols."""
    hub: frames.HubStatus = {
        "active_connections": 2,
        "max_connections": 100,
        "dashboard_subscribers": 1,
        "subscribed_symbols": 3,
    }
    sent = wire_json(frames.status(hub, True, "connected", ["b", "a"]))
    tail = [
        "dashboard_worker_running",
        "feed_state",
        "subscriptions",
        "subscription_count",
        "timestamp",
    ]
    assert list(sent) == ["type", *hub, *tail]
    assert sent["subscriptions"] == ["a", "b"]
    assert sent["subscription_count"] == 2
    many = wire_json(frames.status(hub, True, "connected", [f"S{i:04d}" for i in range(900)]))
    assert many["subscription_count"] == 900 and len(many["subscriptions"]) == 100


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 200_000])
def test_a_wire_carries_one_text_frame_and_its_text(size: int) -> None:
    """A Wire's frame parses as exactly one text message, and its text is the same JSON."""
    frame: frames.ErrorFrame = {"type": "error", "message": "é" * size, "timestamp": 1.0}
    wire = Wire(orjson.dumps(frame))
    client = ClientProtocol(parse_uri("ws://example/"), max_size=None, state=State.OPEN)
    client.receive_data(wire.frame)
    [event] = client.events_received()
    assert event.opcode is Opcode.TEXT and event.fin
    assert event.data == wire.data
    assert wire.text == wire.data.decode()
    assert json.loads(wire.text)["message"] == "é" * size
