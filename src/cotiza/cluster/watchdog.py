"""A thread that fences the leader when its renew deadline passes, even if the loop is blocked.

The lease keeper self-fences on the event loop; a loop stuck in a long computation or a
blocking call never gets there, while a new leader may already be logging in upstream.
This watchdog runs on its own thread, armed with the same monotonic deadline, and calls a
thread-safe ``emergency_fence`` (which shuts the upstream socket) once it passes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

EmergencyFence = Callable[[], None]


class FenceWatchdog:
    """One daemon thread; ``arm(deadline)`` moves the deadline, ``disarm()`` cancels it.

    The callback runs at most once per arming, on the watchdog's thread; it must be
    thread-safe, idempotent and quick (shut a socket, set a flag), never touch the event
    loop's state. With a responsive loop it may run in the same instant as the keeper's own
    orderly self-fence (both watch the same deadline), so it must be harmless next to it.
    """

    def __init__(self, emergency_fence: EmergencyFence, name: str = "lease-watchdog") -> None:
        self._callback = emergency_fence
        self._name = name
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self.fired = 0
        self.last_fired_at: float | None = None  # monotonic

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._closed = False
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Disarm and end the thread; idempotent."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._closed = True
            self._deadline = None
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)

    def arm(self, deadline: float) -> None:
        """Fire at ``deadline`` (``time.monotonic()`` scale) unless re-armed or disarmed first."""
        with self._cond:
            self._deadline = deadline
            self._cond.notify_all()

    def disarm(self) -> None:
        with self._cond:
            self._deadline = None
            self._cond.notify_all()

    @property
    def armed(self) -> bool:
        with self._cond:
            return self._deadline is not None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    deadline = self._deadline
                    if deadline is None:
                        self._cond.wait()
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._closed:
                    return
                self._deadline = None
                self.fired += 1
                self.last_fired_at = time.monotonic()
            log.error("lease renew deadline passed: emergency fence from the watchdog thread")
            try:
                self._callback()
            except Exception:
                # The thread's boundary: the fence failed, but the keeper will fence again
                # on the loop once it runs; keep watching.
                log.exception("emergency fence failed")
