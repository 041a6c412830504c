"""Tests of the pure Primary frame parser and the frame builders."""

from __future__ import annotations

import random

import orjson
import pytest

from cotiza.feeds.base import FeedStats
from cotiza.feeds.primary_frames import batches, error_frame, md_frame, os_message, smd_message
from cotiza.feeds.primary_parse import (
    QUOTE_ENTRIES,
    Entry,
    FrameApplier,
    Ignored,
    OrderReport,
    ServerError,
    decode,
    parse_frame,
)
from cotiza.feeds.reconnect import Action, backoff_delays, classify, status_action
from cotiza.models import Quote

GGAL = "MERV - XMEV - GGAL - 24hs"
NOW = 1_700_000_000.0

# Frames as Primary sends them (shapes taken from the API documentation and the fake).
RECORDED = [
    b'{"type":"Md","timestamp":1700000000123,"instrumentId":{"marketId":"ROFX",'
    b'"symbol":"MERV - XMEV - GGAL - 24hs"},"marketData":{"BI":[{"price":7130,"size":14026},'
    b'{"price":7120,"size":500}],"OF":[{"price":7150,"size":5430}],"LA":{"price":7140,'
    b'"size":100,"date":1700000000000},"OP":6880,"CL":{"price":6840,"date":1699900000000}}}',
    b'{"type":"Md","timestamp":1700000000456,"instrumentId":{"marketId":"ROFX",'
    b'"symbol":"DLR/DIC26"},"marketData":{"BI":null,"OF":[],"LA":null,"OP":null,"CL":null}}',
    b'{"status":"ERROR","description":"Product NOPE:ROFX doesn\'t exist","message":null}',
    b'{"type":"or","timestamp":1700000000789,"orderReport":{"orderId":"1","status":"NEW"}}',
]


def parse(raw: bytes | str) -> object:
    return parse_frame(decode(raw), NOW)


def test_full_md_frame_gives_top_of_book_last_open_and_close() -> None:
    """A complete Md frame yields the best bid and offer, last trade, open and close."""
    quote = parse(RECORDED[0])
    assert quote == Quote(
        GGAL, 7130.0, 14026.0, 7150.0, 5430.0, 7140.0, 100.0, 6840.0, 6880.0, 1700000000123, NOW
    )


def test_null_and_empty_entries_become_none() -> None:
    """Entries that are null or [] give None fields, not zeros or errors."""
    quote = parse(RECORDED[1])
    assert isinstance(quote, Quote)
    assert quote.symbol == "DLR/DIC26"
    assert (quote.bid, quote.offer, quote.last, quote.op, quote.cl) == (None,) * 5
    assert quote.ts_ms == 1700000000456


def test_missing_market_data_and_timestamp_fall_back() -> None:
    """An Md frame without marketData is an empty book stamped with the receive time."""
    quote = parse('{"type":"Md","instrumentId":{"symbol":"X"}}')
    assert isinstance(quote, Quote)
    assert quote.bid is None and quote.ts_ms == int(NOW * 1000)


def test_scalars_and_objects_are_both_accepted_for_every_entry() -> None:
    """BI as a bare object, LA as a number and OP as an object all parse."""
    frame = {
        "type": "MD",
        "instrumentId": {"symbol": "X"},
        "marketData": {
            "BI": {"price": "10.5", "size": 3},
            "OF": [11, 12],
            "LA": 10.75,
            "OP": {"price": 10},
            "CL": [{"price": 9.5}],
        },
    }
    quote = parse_frame(frame, NOW)
    assert isinstance(quote, Quote)
    assert (quote.bid, quote.bid_size, quote.offer, quote.offer_size) == (10.5, 3.0, 11.0, None)
    assert (quote.last, quote.last_size, quote.op, quote.cl) == (10.75, None, 10.0, 9.5)


@pytest.mark.parametrize("kind", ["Md", "md", "MD", "mD"])
def test_type_compares_case_insensitively(kind: str) -> None:
    """The frame type is matched without regard to case."""
    frame = {"type": kind, "instrumentId": {"symbol": "X"}, "marketData": {"LA": 1}}
    assert isinstance(parse_frame(frame, NOW), Quote)


@pytest.mark.parametrize(
    "value",
    [True, None, "abc", "NaN", "inf", 10**400, [], {}, [None], [[1]], {"price": None}],
)
def test_non_numeric_prices_are_dropped(value: object) -> None:
    """Booleans, garbage strings, non-finite numbers and empty shapes never become prices."""
    frame = {"type": "Md", "instrumentId": {"symbol": "X"}, "marketData": {"BI": value}}
    quote = parse_frame(frame, NOW)
    assert isinstance(quote, Quote) and quote.bid is None


def test_error_frame_is_a_server_error() -> None:
    """An error frame carries its description."""
    assert parse(RECORDED[2]) == ServerError("Product NOPE:ROFX doesn't exist")
    assert parse('{"status":"error","message":"Access Denied"}') == ServerError("Access Denied")
    assert isinstance(parse('{"status":"ERROR"}'), ServerError)


def test_order_report_is_passed_through() -> None:
    """An order report keeps its payload and timestamp."""
    report = parse(RECORDED[3])
    assert report == OrderReport(1700000000789, {"orderId": "1", "status": "NEW"})


@pytest.mark.parametrize(
    ("raw", "malformed"),
    [
        ("{not json", True),
        ("[1, 2]", True),
        ('"text"', True),
        ("42", True),
        ('{"type":"Md"}', True),
        ('{"type":"Md","instrumentId":{"symbol":5}}', True),
        ('{"type":"Md","instrumentId":"GGAL"}', True),
        ('{"type":"or"}', True),
        ('{"hello":"world"}', True),
        ('{"type":"Zz","foo":1}', False),
        ('{"type":7}', True),
        ('{"status":"OK"}', False),
    ],
)
def test_frames_without_a_quote_are_ignored_and_classified(raw: str, malformed: bool) -> None:
    """Malformed frames and unknown types are ignored, the former flagged as malformed."""
    result = parse(raw)
    assert isinstance(result, Ignored)
    assert result.malformed is malformed


def test_parse_never_raises_on_random_garbage() -> None:
    """Fuzzed frames built from JSON fragments never make the parser raise."""
    rng = random.Random(7)
    atoms: list[object] = [None, 0, -1, 1.5, "x", "", [], {}, True, [{"price": 1}], {"price": "a"}]
    keys = ["type", "instrumentId", "marketData", "timestamp", "status", "BI", "LA", "symbol"]
    for _ in range(2000):
        frame: dict[str, object] = {k: rng.choice(atoms) for k in rng.sample(keys, 4)}
        if rng.random() < 0.5:
            frame["type"] = "Md"
            frame["instrumentId"] = {"symbol": rng.choice(["S", 1, None])}
            frame["marketData"] = {k: rng.choice(atoms) for k in ("BI", "OF", "LA", "OP", "CL")}
        parse_frame(frame, NOW)


def test_md_frame_round_trips_through_the_parser() -> None:
    """Rendering a quote as an Md frame and parsing it back gives the same quote."""
    quote = Quote(GGAL, 7130.0, 10.0, 7150.0, 20.0, 7140.0, 5.0, 6840.0, 6880.0, 123, NOW)
    assert parse_frame(orjson.loads(orjson.dumps(md_frame(quote))), NOW) == quote
    empty = Quote(GGAL, None, None, None, None, None, None, None, None, 456, NOW)
    assert parse_frame(md_frame(empty), NOW) == empty


def test_client_messages_have_the_documented_shape() -> None:
    """Subscriptions, order-report subscriptions, error frames and batching."""
    assert smd_message(["A", "B"]) == {
        "type": "smd",
        "level": 1,
        "depth": 1,
        "entries": ["BI", "OF", "LA", "OP", "CL"],
        "products": [{"symbol": "A", "marketId": "ROFX"}, {"symbol": "B", "marketId": "ROFX"}],
    }
    assert os_message("ACC") == {
        "type": "os",
        "account": {"id": "ACC"},
        "snapshotOnlyActive": True,
    }
    assert error_frame("x") == {"status": "ERROR", "description": "x", "message": None}
    assert batches(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert [str(e) for e in QUOTE_ENTRIES] == ["BI", "OF", "LA", "OP", "CL"]
    assert len(Entry) == 15


def test_applier_counts_every_kind_of_frame_and_delivers_only_quotes() -> None:
    """The shared parse path counts frames, quotes, errors, malformed and unknown frames."""
    delivered: list[Quote] = []
    stats = FeedStats()
    applier = FrameApplier(delivered.append, stats)
    for raw in [*RECORDED, b"{broken", b'{"type":"Zz"}']:
        applier.apply(decode(raw), NOW)
    assert [q.symbol for q in delivered] == [GGAL, "DLR/DIC26"]
    assert (stats.frames, stats.quotes, stats.errors) == (6, 2, 2)
    assert stats.extra["server_errors"] == 1
    assert stats.extra["malformed"] == 1
    assert stats.extra["ignored"] == 1
    assert stats.extra["order_reports"] == 1
    assert stats.last_error == "Product NOPE:ROFX doesn't exist"


def test_applier_filters_by_symbol_when_asked() -> None:
    """With a symbol filter, quotes of other instruments are counted as frames only."""
    delivered: list[Quote] = []
    applier = FrameApplier(delivered.append, FeedStats(), frozenset({"DLR/DIC26"}))
    for raw in RECORDED[:2]:
        applier.apply(decode(raw), NOW)
    assert [q.symbol for q in delivered] == ["DLR/DIC26"]


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    """Delays double from the base, stay within the jitter band and never pass the cap."""
    delays = backoff_delays(0.5, 4.0, rng=random.Random(1))
    first = [next(delays) for _ in range(8)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for delay, ceiling in zip(first, ceilings, strict=True):
        assert ceiling * 0.5 <= delay <= ceiling
    fresh = backoff_delays(0.5, 4.0, jitter=0.0)
    assert [next(fresh) for _ in range(4)] == [0.5, 1.0, 2.0, 4.0]


def test_backoff_is_reproducible_and_rejects_bad_jitter() -> None:
    """The same seed gives the same delays; jitter outside [0, 1] is refused."""
    a = backoff_delays(1, 10, rng=random.Random(3))
    b = backoff_delays(1, 10, rng=random.Random(3))
    assert [next(a) for _ in range(5)] == [next(b) for _ in range(5)]
    with pytest.raises(ValueError):
        next(backoff_delays(1, 10, jitter=1.5))


def test_classifier_tells_retryable_from_fatal() -> None:
    """Network errors and 5xx retry, 401 re-authenticates, bad credentials and 404 are fatal."""
    from cotiza.feeds.reconnect import CredentialsRejected, DataSilence, UpstreamError

    assert classify(ConnectionResetError()) is Action.RETRY
    assert classify(TimeoutError()) is Action.RETRY
    assert classify(DataSilence("quiet")) is Action.RETRY
    assert classify(UpstreamError("x", 503)) is Action.RETRY
    assert classify(UpstreamError("x", 404)) is Action.FATAL
    assert classify(CredentialsRejected("bad")) is Action.FATAL
    assert status_action(401) is Action.REAUTH
    assert status_action(429) is Action.RETRY
    assert status_action(400) is Action.FATAL
