"""Ratio history from a recording: what the live sampler would have stored back then.

``cotiza replay FILE --to-db`` feeds every recorded quote, at its recorded time, through
``HistoryRebuilder``; every ``RATIO_SAMPLE_INTERVAL`` of recorded time it takes one sample
per active pair (the same ``compute_ratios`` and rolling indicators as the live sampler),
and ``write_samples`` stores them with the dashboard's minute/hour/day aggregates.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cotiza.calendar import MarketCalendar
from cotiza.models import Quote, RatioPair, RatioSample
from cotiza.ratios import RollingIndicators, compute_ratios
from cotiza.settings import Settings
from cotiza.storage.aggregates import write_aggregates
from cotiza.storage.tables import ratio_samples

log = logging.getLogger(__name__)


class HistoryRebuilder:
    """Samples the active pairs on the recording's own clock."""

    def __init__(self, settings: Settings, pairs: list[RatioPair]) -> None:
        self.settings = settings
        self.calendar = MarketCalendar.from_settings(settings)
        self.pairs = pairs
        self.interval = settings.ratio_sample_interval
        self.latest: dict[str, Quote] = {}
        self.windows = {pair.id: RollingIndicators() for pair in pairs}
        self.next_at: float | None = None
        self.pending: list[RatioSample] = []
        self.taken = 0
        self.skipped_pairs: set[int] = set()  # pairs that already have history in the span
        self.decided: set[int] = set()
        self.stored = 0

    def on_quote(self, quote: Quote) -> None:
        """A recorded quote at its recorded time; samples fall due before it is applied."""
        now = quote.recv_ts
        if self.next_at is None:
            self.next_at = now + self.interval
        while now >= self.next_at:
            self._sample(self.next_at)
            self.next_at += self.interval
        self.latest[quote.symbol] = quote

    def _sample(self, now: float) -> None:
        market_open = self.calendar.is_open(now)
        for pair in self.pairs:
            if pair.id in self.skipped_pairs:
                continue
            values = compute_ratios(
                pair,
                self.latest.get(pair.base),
                self.latest.get(pair.quote),
                now,
                self.settings.quote_stale_after,
                market_open=market_open,
            )
            if all(v is None for v in asdict(values).values()):
                continue  # as live: a row of nulls would only mislead
            indicators = self.windows[pair.id].push(values)
            self.pending.append(RatioSample(pair.id, now, values, indicators))

    def take(self) -> list[RatioSample]:
        """The samples due so far, handed over once."""
        samples, self.pending = self.pending, []
        self.taken += len(samples)
        return samples

    async def write(self, conn: AsyncConnection) -> int:
        """Store the samples due so far with their aggregates; returns how many.

        A pair's first samples decide whether it is imported at all: when the database
        already holds samples of it within their span (the same recording imported
        before), the pair is skipped for the whole import instead of doubled."""
        samples = self.take()
        fresh = {s.pair_id for s in samples} - self.decided
        if fresh and samples:
            first, last = samples[0].asof, samples[-1].asof
            known = await pairs_with_history(conn, first, last)
            for pair_id in sorted(fresh & known):
                log.warning("pair %d already has history in this span: not imported", pair_id)
            self.skipped_pairs |= fresh & known
            self.decided |= fresh
        samples = [s for s in samples if s.pair_id not in self.skipped_pairs]
        if samples:
            await conn.execute(insert(ratio_samples), [s.flat() for s in samples])
            await write_aggregates(conn, samples, self.settings.ratio_field.value)
        self.stored += len(samples)
        return len(samples)


async def pairs_with_history(conn: AsyncConnection, first: float, last: float) -> set[int]:
    """Pairs that already have samples within ``[first, last]`` (an earlier import)."""
    query = (
        select(ratio_samples.c.pair_id)
        .where(ratio_samples.c.asof >= first, ratio_samples.c.asof <= last)
        .group_by(ratio_samples.c.pair_id)
        .having(func.count() > 0)
    )
    return set((await conn.execute(query)).scalars())
