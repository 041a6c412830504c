"""The replay feed behind ``FEED=replay``: a recording played back through the live parse path.

``REPLAY_SPEED`` 1 keeps the recorded gaps between frames (real time), 2 plays twice as
fast, 0 as fast as possible while still yielding to the event loop every
``REPLAY_YIELD_EVERY`` frames. ``REPLAY_LOOP`` starts over at the end. Frames go through the
same ``FrameApplier`` as the live Primary adapter, so a replay reproduces the quotes, and
with them the cache states and ratios, of the run that was recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from cotiza.errors import FatalFeedError
from cotiza.feeds.base import Feed, FeedState, QuoteSink
from cotiza.feeds.primary_parse import FrameApplier
from cotiza.feeds.recording import RecordingReader

log = logging.getLogger(__name__)


class ReplayFeed(Feed):
    """Plays a recording of raw frames (plain or gzip NDJSON)."""

    name: ClassVar[str] = "replay"

    def catalogue(self) -> list[str]:
        # Unknown until the file is read; an empty catalogue lets any symbol through.
        return []

    @property
    def path(self) -> Path:
        path = self.settings.replay_file
        if path is None:
            raise FatalFeedError("REPLAY_FILE is required for FEED=replay")
        return path

    async def run(self, instruments: Sequence[str], sink: QuoteSink) -> None:
        path = self.path
        if not path.is_file():
            self.state = FeedState.FAILED
            raise FatalFeedError(f"REPLAY_FILE {str(path)!r} does not exist")
        applier = FrameApplier(sink, self.stats, frozenset(instruments) or None)
        self.stats.extra.setdefault("loops", 0.0)
        self.connected_at = time.time()
        self.state = FeedState.CONNECTED
        log.info(
            "replaying %s at speed %g%s", path, self.settings.replay_speed, " (loop)" * self.loop
        )
        try:
            while True:
                played = await self.play_once(path, applier)
                if not self.loop or played == 0:
                    break
                self.stats.extra["loops"] += 1
        except asyncio.CancelledError:
            self.state = FeedState.STOPPED
            raise
        self.state = FeedState.STOPPED
        log.info("replay finished: %d frames, %d quotes", self.stats.frames, self.stats.quotes)

    @property
    def loop(self) -> bool:
        return self.settings.replay_loop

    async def play_once(self, path: Path, applier: FrameApplier) -> int:
        """Play the file once; returns how many frames were played."""
        speed = self.settings.replay_speed
        every = self.settings.replay_yield_every
        loop = asyncio.get_running_loop()
        reader = RecordingReader(path)
        started: float | None = None
        first_ns = 0
        played = 0
        async with contextlib.aclosing(reader.batches()) as batches:
            async for batch in batches:
                for item in batch:
                    if speed > 0:
                        if started is None:
                            started, first_ns = loop.time(), item.recv_ns
                        delay = started + (item.recv_ns - first_ns) / 1e9 / speed - loop.time()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    recv_ns = time.time_ns()
                    if self.frame_sink is not None:
                        self.frame_sink(recv_ns, item.frame)
                    applier.apply(item.frame, recv_ns / 1e9)
                    played += 1
                    if played % every == 0:
                        await asyncio.sleep(0)
        if reader.bad_lines:
            self.stats.errors += reader.bad_lines
            log.warning("%s: %d unreadable lines skipped", path, reader.bad_lines)
        return played
