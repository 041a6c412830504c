"""cancel_and_wait: the one way cotiza cancels a task and waits for it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from cotiza.tasks import cancel_and_wait


async def _forever() -> None:
    await asyncio.Event().wait()


async def _stubborn(release: asyncio.Event) -> None:
    """Ignores cancellation until ``release`` is set."""
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            continue


async def _fail(message: str) -> None:
    raise RuntimeError(message)


async def test_cancels_running_tasks_and_reports_success() -> None:
    """Running tasks are cancelled and awaited; the helper returns True."""
    tasks = [asyncio.create_task(_forever()) for _ in range(3)]
    await asyncio.sleep(0)
    assert await cancel_and_wait(*tasks, timeout=5) is True
    assert all(t.cancelled() for t in tasks)


async def test_accepts_none_and_finished_tasks() -> None:
    """None entries and tasks that already ended need no guard at the call site."""
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    assert await cancel_and_wait(None, done, timeout=1) is True
    assert await cancel_and_wait(timeout=1) is True
    assert not done.cancelled()


async def test_a_task_ignoring_cancellation_is_left_behind_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A task still running at the deadline makes it return False and is named in a warning."""
    release = asyncio.Event()
    task = asyncio.create_task(_stubborn(release), name="stubborn-worker")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="cotiza.tasks"):
        assert await cancel_and_wait(task, timeout=0.05) is False
    assert not task.done()
    assert "stubborn-worker" in caplog.text
    release.set()
    await asyncio.wait_for(task, 5)


async def test_a_task_that_failed_reraises_its_own_error() -> None:
    """A task that ended with its own exception re-raises it, as ``await task`` would."""
    task = asyncio.create_task(_fail("broken worker"))
    await asyncio.wait({task})
    with pytest.raises(RuntimeError, match="broken worker"):
        await cancel_and_wait(task, timeout=1)


async def test_with_several_failures_the_first_is_raised_and_the_others_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first failure in argument order is raised; later ones are logged, not lost."""
    first = asyncio.create_task(_fail("first"))
    second = asyncio.create_task(_fail("second"))
    running = asyncio.create_task(_forever())
    await asyncio.wait({first, second})
    with (
        caplog.at_level(logging.ERROR, logger="cotiza.tasks"),
        pytest.raises(RuntimeError, match="first"),
    ):
        await cancel_and_wait(first, second, running, timeout=1)
    assert running.cancelled()
    assert "second" in caplog.text


async def test_the_callers_own_cancellation_is_not_swallowed() -> None:
    """Cancelling the task that waits in cancel_and_wait cancels it, unlike suppress()."""
    release = asyncio.Event()
    inner = asyncio.create_task(_stubborn(release))
    waiting = asyncio.Event()

    async def owner() -> None:
        waiting.set()
        await cancel_and_wait(inner, timeout=30)

    outer = asyncio.create_task(owner())
    await asyncio.wait_for(waiting.wait(), 5)
    await asyncio.sleep(0)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(outer, 5)
    release.set()
    await asyncio.wait_for(inner, 5)
