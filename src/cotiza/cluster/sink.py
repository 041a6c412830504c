"""Where a follower applies the leader's stream: its own quote cache, ratios and hub.

``BackplaneSink`` is the ``BusSink`` of a cluster node. Ticks become quotes in the local
``QuoteCache`` (so /api/quotes, staleness and live ratios work exactly as on the leader,
computed locally), samples advance the local rolling windows (indicators from the
leader's samples), and the dashboard frame is relayed as is. A snapshot is applied as an
upsert that never moves a key backwards, so replaying it after a resync is harmless.
The codecs the leader uses to publish live here too, next to their inverse.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from cotiza.cluster.envelope import BusMessage, Kind, Publication, Snapshot
from cotiza.models import Indicators, Quote, RatioSample, RatioValues
from cotiza.ws import frames
from cotiza.ws.frames import Wire

if TYPE_CHECKING:
    from cotiza.cache import QuoteCache
    from cotiza.ratio_engine import RatioEngine

log = logging.getLogger(__name__)

DASHBOARD_KEY = "dashboard"
ALERT_PREFIX = "alert:"  # control notices carrying an alert frame (events: one key each)
_QUOTE_FIELDS = tuple(f.name for f in dataclasses.fields(Quote) if f.name != "recv_ts")
_VALUE_FIELDS = tuple(f.name for f in dataclasses.fields(RatioValues))
_INDICATOR_FIELDS = tuple(f.name for f in dataclasses.fields(Indicators))


# -- codecs --------------------------------------------------------------------------


def tick_publication(quote: Quote) -> Publication:
    """A quote as the exact client ``tick`` frame; its receive time travels as the as-of."""
    frame = orjson.dumps(frames.tick(quote)).decode()
    return Publication(Kind.TICK, quote.symbol, frame, quote.recv_ts)


def quote_of(message: BusMessage) -> Quote:
    body = orjson.loads(message.frame)
    recv_ts = message.asof if message.asof is not None else time.time()
    return Quote(**{name: body[name] for name in _QUOTE_FIELDS}, recv_ts=recv_ts)


def sample_publication(sample: RatioSample) -> Publication:
    frame = orjson.dumps(sample.flat()).decode()
    return Publication(Kind.SAMPLE, str(sample.pair_id), frame, sample.asof)


def sample_of(message: BusMessage) -> RatioSample:
    body = orjson.loads(message.frame)
    return RatioSample(
        pair_id=int(body["pair_id"]),
        asof=float(body["asof"]),
        values=RatioValues(**{name: body[name] for name in _VALUE_FIELDS}),
        indicators=Indicators(**{name: body[name] for name in _INDICATOR_FIELDS}),
    )


def dashboard_publication(wire: Wire) -> Publication:
    return Publication(Kind.DASH, DASHBOARD_KEY, wire.text, time.time())


def alert_publication(wire: Wire, number: int) -> Publication:
    """An alert is an event, not a state: a key of its own, never coalesced nor stored."""
    return Publication(Kind.CONTROL, f"{ALERT_PREFIX}{number}", wire.text, time.time())


# -- the sink ------------------------------------------------------------------------


class BackplaneSink:
    """Applies the leader's envelopes on this node; every method only enqueues work."""

    def __init__(
        self,
        cache: QuoteCache,
        ratios: RatioEngine,
        relay_dashboard: Callable[[Wire], None],
        relay_alert: Callable[[Wire], object] | None = None,
    ) -> None:
        self.cache = cache
        self.ratios = ratios
        self.relay_dashboard = relay_dashboard
        self.relay_alert = relay_alert
        self.invalid = 0
        self.last_applied_at: float | None = None

    def apply(self, message: BusMessage) -> None:
        try:
            self._apply(message)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            # A frame this version cannot read (e.g. a newer leader's): skip it, keep going.
            self.invalid += 1
            log.warning("cannot apply a %s envelope for %r: %s", message.kind, message.key, exc)

    def resync(self, snapshot: Snapshot) -> None:
        for message in snapshot.messages():
            self.apply(message)
        log.info("backplane snapshot applied: %d entries", len(snapshot))

    def _apply(self, message: BusMessage) -> None:
        kind = message.kind
        if kind is Kind.TICK:
            quote = quote_of(message)
            current = self.cache.get(quote.symbol)
            if current is not None and current.recv_ts >= quote.recv_ts:
                return  # already have this one (or newer): a keyframe or snapshot replay
            self.cache.apply(quote)
        elif kind is Kind.SAMPLE:
            self.ratios.apply_sample(sample_of(message))
        elif kind is Kind.DASH:
            self.relay_dashboard(Wire(message.frame.encode()))
        elif (
            kind is Kind.CONTROL
            and message.key.startswith(ALERT_PREFIX)
            and self.relay_alert is not None
        ):
            self.relay_alert(Wire(message.frame.encode()))
        self.last_applied_at = time.time()
