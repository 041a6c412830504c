"""Typed payloads stay in step with the dataclasses they are built from."""

from __future__ import annotations

import dataclasses

from cotiza.dashboard import DashboardRow, DashboardRowData
from cotiza.models import (
    Indicators,
    PairRecord,
    Quote,
    RatioPair,
    RatioSample,
    RatioValues,
    SampleRow,
    TickPayload,
)
from cotiza.storage.writer import TickRow, tick_row

QUOTE = Quote("AL30", 100.0, 2.0, 101.0, 3.0, 100.5, 4.0, 99.0, 98.0, 1_700_000_000_000, 1.7e9)


def names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_sample_row_is_every_field_of_values_and_indicators() -> None:
    """RatioSample.flat() carries pair_id, asof and every ratio and indicator, by value."""
    values = RatioValues(1.0, 2.0, 1.5, None)
    indicators = Indicators(sma180_mid=1.4, z_bid=0.5, ratio_spread=1.0)
    row = RatioSample(7, 123.0, values, indicators).flat()
    assert row.keys() == {"pair_id", "asof"} | names(RatioValues) | names(Indicators)
    assert row.keys() == SampleRow.__required_keys__
    assert row == {
        "pair_id": 7,
        "asof": 123.0,
        **dataclasses.asdict(values),
        **dataclasses.asdict(indicators),
    }


def test_tick_payload_and_row_cover_the_quote() -> None:
    """A tick frame has every Quote field but the receive time; a stored tick row has all."""
    payload = QUOTE.tick_payload()
    assert payload.keys() == names(Quote) - {"recv_ts"} == TickPayload.__required_keys__
    row = tick_row(QUOTE)
    assert row == dataclasses.asdict(QUOTE)
    assert row.keys() == TickRow.__required_keys__


def test_pair_record_and_dashboard_row_match_their_dataclasses() -> None:
    """PairRecord and DashboardRowData name exactly the fields of RatioPair and DashboardRow."""
    pair = RatioPair(3, "AL30", "AL30D", 1.0, "desk", False)
    assert pair.as_dict() == dataclasses.asdict(pair)
    assert PairRecord.__required_keys__ == names(RatioPair)
    assert DashboardRowData.__required_keys__ == names(DashboardRow)
