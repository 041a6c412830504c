"""Latest quotes from the cache."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from cotiza.api.deps import ServicesDep
from cotiza.errors import NotFoundError
from cotiza.models import Quote

router = APIRouter(prefix="/api/quotes", tags=["quotes"])


def quote_view(quote: Quote, services: ServicesDep, now: float) -> dict[str, Any]:
    return {
        **quote.tick_payload(),
        "mid": quote.mid,
        "recv_ts": quote.recv_ts,
        "age": round(max(0.0, now - quote.recv_ts), 3),
        # While the feed reconnects every quote is stale, however young: it may have moved.
        "stale": services.feed.feed_down or services.cache.is_stale(quote, now),
    }


@router.get("")
async def list_quotes(services: ServicesDep) -> dict[str, Any]:
    now = time.time()
    quotes = [quote_view(q, services, now) for q in services.cache.all()]
    return {"count": len(quotes), "quotes": quotes, "timestamp": now}


@router.get("/{symbol:path}")
async def get_quote(symbol: str, services: ServicesDep) -> dict[str, Any]:
    quote = services.cache.get(symbol)
    if quote is None:
        raise NotFoundError(f"no quote for {symbol!r}")
    return quote_view(quote, services, time.time())
