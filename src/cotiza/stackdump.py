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
KEEP_DUMPS = 5  # stack files kept in RUN_DIR, this process's own included


def stack_file(run_dir: Path, pid: int) -> Path:
    """Where the process ``pid`` writes its stack dumps."""
    return run_dir / f"stack-{pid}.txt"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune_stack_files(run_dir: Path, keep: int = KEEP_DUMPS) -> None:
    """Remove dead processes' empty stack files, and all but the newest ``keep`` others."""
    stale: list[tuple[float, Path]] = []
    for path in run_dir.glob("stack-*.txt"):
        pid = path.stem.removeprefix("stack-")
        if not pid.isdigit() or _alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            stat = path.stat()
            if stat.st_size == 0:
                path.unlink()
            else:
                stale.append((stat.st_mtime, path))
    stale.sort(reverse=True)
    for _, path in stale[max(0, keep - 1) :]:  # room for this process's own file
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def stack_dumps_on_signal(run_dir: Path) -> Iterator[Path]:
    """Dump every thread's stack to ``run_dir/stack-PID.txt`` on SIGUSR1 while inside.

    Old dumps of processes that are gone are pruned to the last few on entry, and this
    process's file is removed on the way out if nothing was dumped, however the run ends
    (a failed start exits through ``SystemExit``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    prune_stack_files(run_dir)
    path = stack_file(run_dir, os.getpid())
    try:
        # The file stays open for the whole run: the C handler cannot open files.
        with path.open("a", encoding="utf-8") as handle:
            faulthandler.register(DUMP_SIGNAL, file=handle, all_threads=True)
            try:
                yield path
            finally:
                faulthandler.unregister(DUMP_SIGNAL)
    finally:
        with contextlib.suppress(OSError):
            if path.stat().st_size == 0:
                path.unlink()
