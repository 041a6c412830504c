"""The feed interface every market-data adapter implements."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from cotiza.models import Quote
from cotiza.settings import Settings

QuoteSink = Callable[[Quote], None]
"""Called on the event loop for every normalised quote; must not block."""

FrameSink = Callable[[int, object], None]
"""Optional raw-frame tap ``(recv_ns, frame)`` used by the recorder."""


class FeedState(StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(slots=True)
class FeedStats:
    """Counters a feed keeps for health and metrics."""

    frames: int = 0
    quotes: int = 0
    errors: int = 0
    reconnects: int = 0
    last_error: str | None = None
    extra: dict[str, float] = field(default_factory=dict)


class Feed(abc.ABC):
    """An asyncio-native source of quotes.

    ``run`` delivers quotes to ``sink`` until it is cancelled (the owner cancels the task
    to stop it) or raises ``FatalFeedError``. It reconnects by itself on retryable errors.
    """

    name: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = FeedState.IDLE
        self.stats = FeedStats()
        # Wall clock when the feed last became CONNECTED: quotes received before it are
        # leftovers of an earlier connection, not live.
        self.connected_at: float | None = None
        self.frame_sink: FrameSink | None = None

    @abc.abstractmethod
    def catalogue(self) -> list[str]:
        """Symbols this feed can deliver without a network round trip (may be empty)."""

    @abc.abstractmethod
    async def run(self, instruments: Sequence[str], sink: QuoteSink) -> None:
        """Deliver quotes for ``instruments`` to ``sink`` until cancelled."""

    def shut_upstream(self) -> bool:
        """Shut the upstream socket now, from any thread (a cluster leader's emergency
        fence while its event loop may be blocked); True if there was one to shut.

        Only the socket: the feed's task notices on its next read. Feeds without an
        upstream connection have nothing to shut.
        """
        return False
