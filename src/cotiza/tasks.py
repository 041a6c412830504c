"""Owning asyncio tasks: the one way cotiza cancels a task and waits for it to end."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None, timeout: float) -> bool:
    """Cancel ``tasks`` and wait up to ``timeout`` seconds for all of them to finish.

    Returns True when every task has finished, False when some ignored the cancellation
    past the deadline (each is named in a warning and left behind, still cancelled).
    ``None`` entries and tasks that already finished are accepted, so callers need no
    guards; cancelling twice is harmless.

    A task that ended with an exception of its own (not the cancellation) re-raises it
    here, as ``await task`` would; with several, the first one in argument order is
    raised and the others are logged. Unlike ``task.cancel()`` followed by
    ``with suppress(CancelledError): await task``, a cancellation of the *caller* while it
    waits is never swallowed.
    """
    pending = [task for task in tasks if task is not None]
    if not pending:
        return True
    for task in pending:
        task.cancel()
    done, late = await asyncio.wait(pending, timeout=timeout)
    for task in late:
        log.warning("task %s did not finish within %g s of its cancellation", _name(task), timeout)
    failures = [
        error
        for task in pending
        if task in done and not task.cancelled() and (error := task.exception()) is not None
    ]
    for extra in failures[1:]:
        log.error("task failed while being stopped", exc_info=extra)
    if failures:
        raise failures[0]
    return not late


def _name(task: asyncio.Future[Any]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)
