"""The quote cache: the latest normalised quote per symbol, and who to tell about it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from cotiza.calendar import MarketCalendar
from cotiza.models import Quote
from cotiza.staleness import quote_is_stale

log = logging.getLogger(__name__)

QuoteListener = Callable[[Quote], object]


class QuoteCache:
    """Holds the newest quote of each symbol and fans each update out to listeners.

    Listeners run synchronously on the event loop and must only enqueue work.
    """

    def __init__(self, calendar: MarketCalendar, stale_after: float) -> None:
        self._quotes: dict[str, Quote] = {}
        self._listeners: list[QuoteListener] = []
        self.calendar = calendar
        self.stale_after = stale_after
        self.updates = 0
        self.first_update_at: float | None = None
        self.last_update_at: float | None = None
        self._second = 0
        self._second_count = 0
        self._previous_second_count = 0

    def add_listener(self, listener: QuoteListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: QuoteListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def apply(self, quote: Quote) -> None:
        """Store ``quote`` as the latest of its symbol and notify every listener."""
        self._quotes[quote.symbol] = quote
        self.updates += 1
        second = int(quote.recv_ts)
        if second != self._second:
            adjacent = second == self._second + 1
            self._previous_second_count = self._second_count if adjacent else 0
            self._second = second
            self._second_count = 0
        self._second_count += 1
        self.last_update_at = quote.recv_ts
        if self.first_update_at is None:
            self.first_update_at = quote.recv_ts
        for listener in self._listeners:
            try:
                listener(quote)
            except Exception:
                # A broken listener must not stop the feed; it is a bug worth a traceback.
                log.exception("quote listener %r failed", listener)

    def tick_rate(self, now: float | None = None) -> int:
        """Quotes received during the last complete second."""
        second = int(now or time.time())
        if second == self._second + 1:
            return self._second_count
        if second == self._second:
            return self._previous_second_count
        return 0

    def get(self, symbol: str) -> Quote | None:
        return self._quotes.get(symbol)

    def all(self) -> list[Quote]:
        return list(self._quotes.values())

    def symbols(self) -> list[str]:
        return list(self._quotes)

    def snapshot(self, symbols: Iterable[str]) -> list[Quote]:
        return [q for s in symbols if (q := self._quotes.get(s)) is not None]

    def age(self, symbol: str, now: float | None = None) -> float | None:
        quote = self._quotes.get(symbol)
        if quote is None:
            return None
        return max(0.0, (now or time.time()) - quote.recv_ts)

    def is_stale(self, quote: Quote, now: float | None = None, *, feed_down: bool = False) -> bool:
        """``cotiza.staleness.quote_is_stale`` for ``quote``, with this cache's calendar and limit.

        Outside the session, prices legitimately stop moving; the last one stays valid.
        """
        now = now or time.time()
        return quote_is_stale(
            quote.recv_ts,
            now,
            market_open=self.calendar.is_open(now),
            feed_down=feed_down,
            limit=self.stale_after,
        )

    def clear(self) -> None:
        self._quotes.clear()
        self.first_update_at = None
        self.last_update_at = None
