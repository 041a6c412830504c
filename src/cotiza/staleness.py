"""The staleness rule: when a cached quote may no longer be shown or used as current.

One pure function, shared by the quote cache (``QuoteCache.is_stale``), the ratio engine
(``compute_ratios``) and ``/api/quotes``, so the three can never disagree about a quote.
"""

from __future__ import annotations


def quote_is_stale(
    recv_ts: float, now: float, *, market_open: bool, feed_down: bool, limit: float
) -> bool:
    """Whether a quote received at ``recv_ts`` is stale at ``now``.

    - While the feed has lost its upstream (``feed_down``), every quote is stale, however
      young: the price may have moved without cotiza seeing it.
    - Outside the session (``market_open`` false) no quote is stale: prices legitimately
      stop moving and the last one stays valid.
    - Otherwise a quote is stale once it is older than ``limit`` seconds; a quote exactly
      ``limit`` seconds old is still fresh.
    """
    if feed_down:
        return True
    if not market_open:
        return False
    return now - recv_ts > limit
