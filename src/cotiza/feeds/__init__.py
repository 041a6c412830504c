"""Market-data feeds behind a small registry chosen by ``FEED``."""

from __future__ import annotations

from collections.abc import Callable

from cotiza.errors import ConfigurationError
from cotiza.feeds.base import Feed, FeedState, FeedStats, QuoteSink
from cotiza.settings import FeedKind, Settings

FeedFactory = Callable[[Settings], Feed]


def _sim(settings: Settings) -> Feed:
    from cotiza.feeds.sim import SimFeed

    return SimFeed(settings)


def _replay(settings: Settings) -> Feed:
    from cotiza.feeds.replay import ReplayFeed

    return ReplayFeed(settings)


def _primary(settings: Settings) -> Feed:
    from cotiza.feeds.primary import PrimaryFeed

    return PrimaryFeed(settings)


_REGISTRY: dict[FeedKind, FeedFactory] = {
    FeedKind.SIM: _sim,
    FeedKind.REPLAY: _replay,
    FeedKind.PRIMARY: _primary,
}


def create_feed(settings: Settings) -> Feed:
    """Build the feed named by ``settings.feed``."""
    try:
        factory = _REGISTRY[settings.feed]
    except KeyError:
        raise ConfigurationError(
            f"invalid configuration: FEED: {settings.feed.value!r} is not available in this build"
        ) from None
    return factory(settings)


__all__ = ["Feed", "FeedState", "FeedStats", "QuoteSink", "create_feed"]
