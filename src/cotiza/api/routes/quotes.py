"""Latest quotes from the cache."""

from __future__ import annotations

import time

from fastapi import APIRouter

from cotiza.api.deps import ServicesDep
from cotiza.api.schemas import QuoteList, QuoteView, error_responses
from cotiza.errors import NotFoundError
from cotiza.models import Quote, resolve_symbol
from cotiza.staleness import quote_is_stale

router = APIRouter(prefix="/api/quotes", tags=["quotes"])


class QuoteViews:
    """Renders quotes as of one moment: the staleness rule's inputs are read once."""

    def __init__(self, services: ServicesDep, now: float) -> None:
        self.now = now
        self.market_open = services.calendar.is_open(now)
        # While the feed reconnects every quote is stale, however young: it may have moved.
        self.feed_down = services.feed.feed_down
        self.limit = services.settings.quote_stale_after

    def __call__(self, quote: Quote) -> QuoteView:
        now = self.now
        stale = quote_is_stale(
            quote.recv_ts,
            now,
            market_open=self.market_open,
            feed_down=self.feed_down,
            limit=self.limit,
        )
        return {
            **quote.tick_payload(),
            "mid": quote.mid,
            "recv_ts": quote.recv_ts,
            "age": round(max(0.0, now - quote.recv_ts), 3),
            "stale": stale,
        }


@router.get("")
async def list_quotes(services: ServicesDep) -> QuoteList:
    """The latest quote of every symbol in the cache."""
    now = time.time()
    view = QuoteViews(services, now)
    quotes = [view(q) for q in services.cache.all()]
    return {"count": len(quotes), "quotes": quotes, "timestamp": now}


@router.get("/{symbol:path}", responses=error_responses(404))
async def get_quote(symbol: str, services: ServicesDep) -> QuoteView:
    """The latest quote of one symbol: Primary's name (``MERV - XMEV - AL30 - 24hs``) or its
    short name (``AL30``; ``AL30 CI`` for another settlement)."""
    quote = services.cache.get(symbol)
    if quote is None:
        resolved = resolve_symbol(symbol, services.feed.known_symbols())
        quote = services.cache.get(resolved) if resolved is not None else None
    if quote is None:
        raise NotFoundError(f"no quote for {symbol!r}")
    return QuoteViews(services, time.time())(quote)
