"""Recordings of raw feed frames: NDJSON lines ``{"recv_ns": ..., "frame": {...}}``.

``FrameRecorder`` attaches to a feed's ``frame_sink`` (or renders the simulator's quotes as
Primary ``Md`` frames) and writes in the background; ``RecordingReader`` reads a recording,
plain or gzip-compressed (told apart by its magic bytes, not its name), in batches on a
worker thread so that neither ever blocks the event loop.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

import orjson

from cotiza.feeds.primary_frames import md_frame
from cotiza.models import Quote
from cotiza.tasks import cancel_and_wait

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    """One line of a recording: the local receive time and the frame as received."""

    recv_ns: int
    frame: object


def parse_line(line: bytes) -> RecordedFrame | None:
    """A recorded frame, or ``None`` for a blank or broken line."""
    line = line.strip()
    if not line:
        return None
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(item) is not dict:
        return None
    recv_ns = item.get("recv_ns")
    if type(recv_ns) is not int or "frame" not in item:
        return None
    return RecordedFrame(recv_ns, item["frame"])


class RecordingReader:
    """Reads a recording in batches on a worker thread, one batch ahead of the consumer."""

    def __init__(self, path: Path, batch_size: int = 2000) -> None:
        self.path = path
        self.batch_size = batch_size
        self.bad_lines = 0
        self.size = path.stat().st_size
        self._raw: io.BufferedIOBase | None = None
        self._handle: io.BufferedIOBase | None = None

    @property
    def position(self) -> int:
        """Bytes of the file consumed so far (compressed bytes for gzip), for progress."""
        raw = self._raw
        if raw is None or raw.closed:
            return self.size
        return raw.tell()

    def _open(self) -> None:
        self._raw = self.path.open("rb")
        magic = self._raw.read(2)
        self._raw.seek(0)
        self._handle = gzip.GzipFile(fileobj=self._raw) if magic == GZIP_MAGIC else self._raw

    def _read_batch(self) -> tuple[list[RecordedFrame], bool]:
        """Up to ``batch_size`` frames, and whether the end of the file was reached."""
        if self._handle is None:
            self._open()
        handle = self._handle
        assert handle is not None
        batch: list[RecordedFrame] = []
        for _ in range(self.batch_size):
            line = handle.readline()
            if not line:
                return batch, True
            item = parse_line(line)
            if item is None:
                if line.strip():
                    self.bad_lines += 1
                continue
            batch.append(item)
        return batch, False

    def _close(self) -> None:
        for handle in (self._handle, self._raw):
            if handle is not None:
                handle.close()

    async def batches(self) -> AsyncGenerator[list[RecordedFrame], None]:
        """Batches until the end of the file; empty batches are skipped."""
        ahead: asyncio.Future[tuple[list[RecordedFrame], bool]] | None = None
        try:
            pending = asyncio.ensure_future(asyncio.to_thread(self._read_batch))
            ahead = pending
            while True:
                batch, at_end = await pending
                ahead = None
                if not at_end:
                    pending = asyncio.ensure_future(asyncio.to_thread(self._read_batch))
                    ahead = pending
                if batch:
                    yield batch
                if at_end:
                    return
        finally:
            if ahead is None:
                self._close()
            else:
                # The worker thread cannot be interrupted: close once its read is over.
                ahead.add_done_callback(self._close_after)

    def _close_after(self, done: asyncio.Future[tuple[list[RecordedFrame], bool]]) -> None:
        if not done.cancelled():
            done.exception()  # retrieved, so a failed read after the end is not reported
        self._close()


class FrameRecorder:
    """Writes frames as NDJSON, flushing every ``flush_interval`` on a worker thread.

    ``write`` only appends to an in-memory buffer, so it is safe as a feed's ``frame_sink``.
    A path ending in ``.gz`` is written gzip-compressed.
    """

    def __init__(self, path: Path, flush_interval: float = 1.0, stop_timeout: float = 10.0) -> None:
        self.path = path
        self.flush_interval = flush_interval
        self.stop_timeout = stop_timeout
        self.frames = 0
        self.bytes_written = 0
        self._buffer: list[bytes] = []
        self._handle: io.BufferedIOBase | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._handle is not None:
            return
        self._handle = await asyncio.to_thread(self._open)
        self._task = asyncio.create_task(self._flush_loop(), name="frame-recorder")
        log.info("recording frames to %s", self.path)

    def _open(self) -> io.BufferedIOBase:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.suffix == ".gz":
            return gzip.open(self.path, "wb", compresslevel=6)
        return self.path.open("wb")

    def write(self, recv_ns: int, frame: object) -> None:
        """Buffer one frame; the flush task writes it out."""
        self._buffer.append(orjson.dumps({"recv_ns": recv_ns, "frame": frame}))
        self.frames += 1

    def write_quote(self, quote: Quote) -> None:
        """Record a quote of a feed without raw frames (the simulator) as an ``Md`` frame."""
        self.write(time.time_ns(), md_frame(quote))

    async def flush(self) -> None:
        async with self._lock:
            handle = self._handle
            if handle is None or not self._buffer:
                return
            lines, self._buffer = self._buffer, []
            data = b"\n".join(lines) + b"\n"
            await asyncio.to_thread(self._write, handle, data)
            self.bytes_written += len(data)

    @staticmethod
    def _write(handle: io.BufferedIOBase, data: bytes) -> None:
        handle.write(data)
        handle.flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                # Shielded: a stop() arriving mid-write must not lose the batch in flight;
                # stop() then waits for it on the lock before its own final flush.
                await asyncio.shield(self.flush())
            except OSError:
                log.exception("writing the recording %s failed; a batch was lost", self.path)

    async def stop(self) -> None:
        """Flush what is buffered and close the file; safe to call twice."""
        task, self._task = self._task, None
        await cancel_and_wait(task, timeout=self.stop_timeout)
        await self.flush()
        handle, self._handle = self._handle, None
        if handle is not None:
            await asyncio.to_thread(handle.close)
            log.info("recording closed: %d frames in %s", self.frames, self.path)
