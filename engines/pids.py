"""Is a process still there: the liveness checks shared by the run list (`lost` runs), the
capture server's state file, the launcher (`procs.py`), and the child processes that stop
when their parent dies.

psutil is imported inside the functions: the console imports this through the workspace
module and must start fast.
"""

from __future__ import annotations

import os
from typing import Any

START_SLACK_S = 1.0  # a process created this much after the recorded start is a newer one (pid reused)


def pid_alive(pid: int, started_at: float | None = None) -> bool:
    """True if `pid` runs and is not a zombie. Given `started_at` (when the process we mean
    started), a process that started later is a newer one that reused the pid: False."""
    try:
        return live_process(pid, started_at)[0] is not None
    except Exception:
        return True  # cannot tell: do not call a live process dead


def live_process(pid: int, started_at: float | None = None) -> tuple[Any, str | None]:
    """(the psutil.Process, None) while `pid` runs, is not a zombie and was not created after
    `started_at` (give or take START_SLACK_S); else (None, why not, as a clause)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if started_at is not None and proc.create_time() > started_at + START_SLACK_S:
            return None, "it started after the record (the pid was reused)"
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None, "it has exited"
        return proc, None
    except psutil.NoSuchProcess:
        return None, "it has exited"
    except psutil.AccessDenied:
        return None, "not allowed to inspect it"
    except ValueError:
        return None, f"{pid} is not a pid"


def parent_alive(parent: int) -> bool:
    """False once this process was re-parented or the original parent is dead (or a zombie)."""
    import psutil

    if os.getppid() != parent:
        return False
    try:
        return psutil.Process(parent).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True
