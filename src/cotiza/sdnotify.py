"""systemd's notification protocol: READY=1 once serving, WATCHDOG=1 from the event loop.

The watchdog pings come from a task on the service's own loop, so a blocked loop stops
them and systemd (``WatchdogSec=``) restarts the unit. Without ``NOTIFY_SOCKET`` every
function here does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send one notification; False when not under systemd or when sending failed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        log.warning("sd_notify %s failed: %s", message.split("=", 1)[0], exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, when systemd asks this process for pings."""
    usec = os.environ.get("WATCHDOG_USEC")
    target = os.environ.get("WATCHDOG_PID")
    if not usec or (target and target != str(os.getpid())):
        return None
    try:
        return max(0.05, int(usec) / 2_000_000)
    except ValueError:
        return None


async def _ping(interval: float) -> None:
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


class Watchdog:
    """Tells systemd the service is ready and keeps pinging while the loop runs."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if not notify("READY=1"):
            return
        interval = watchdog_interval()
        if interval is not None and self._task is None:
            self._task = asyncio.create_task(_ping(interval), name="sd-watchdog")

    async def stop(self) -> None:
        notify("STOPPING=1")
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
