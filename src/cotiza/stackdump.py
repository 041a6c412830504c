"""Stack dumps on a signal, so that a supervisor can see where a hung process is stuck.

``faulthandler`` writes the traceback of every thread from its C signal handler, without
the GIL or the event loop, so it answers even when the loop is blocked in a sync call.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
from collections.abc import Iterator
from pathlib import Path

DUMP_SIGNAL = signal.SIGUSR1


def stack_file(run_dir: Path, pid: int) -> Path:
    """Where the process ``pid`` writes its stack dumps."""
    return run_dir / f"stack-{pid}.txt"


@contextlib.contextmanager
def stack_dumps_on_signal(run_dir: Path) -> Iterator[Path]:
    """Dump every thread's stack to ``run_dir/stack-PID.txt`` on SIGUSR1 while inside."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = stack_file(run_dir, os.getpid())
    # The file stays open for the whole run: the C handler cannot open files.
    with path.open("a", encoding="utf-8") as handle:
        faulthandler.register(DUMP_SIGNAL, file=handle, all_threads=True)
        try:
            yield path
        finally:
            faulthandler.unregister(DUMP_SIGNAL)
    with contextlib.suppress(OSError):
        if path.stat().st_size == 0:
            path.unlink()
