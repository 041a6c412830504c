"""Stopping the cluster's own tasks reliably.

A cancellation can be swallowed when it lands in the same instant as a library's own
read timeout (redis-py turns that timeout into "no data yet" and carries on), so a single
``cancel()`` may leave a loop running. The loops also check a stop flag, and ``stop_task``
cancels again until the task has really ended.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def stop_task(
    task: asyncio.Task[Any], *, interval: float = 0.05, attempts: int = 100
) -> None:
    """Cancel ``task`` and wait for it, cancelling again every ``interval`` if it carries on."""
    for _ in range(attempts):
        if task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=interval)
    if not task.done():
        log.error("task %s did not stop after %d cancellations", task.get_name(), attempts)
        return
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s had failed", task.get_name(), exc_info=task.exception())
