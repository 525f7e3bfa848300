"""Is a process still there: the liveness checks shared by the run list (`lost` runs), the
capture server's state file, and the child processes that stop when their parent dies.

psutil is imported inside the functions: the console imports this through the workspace
module and must start fast.
"""

from __future__ import annotations

import os


def pid_alive(pid: int, started_at: float | None = None) -> bool:
    """True if `pid` runs and is not a zombie. Given `started_at` (when the process we mean
    started), a process that started later is a newer one that reused the pid: False."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if started_at is not None and proc.create_time() > started_at + 1.0:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False
    except Exception:
        return True  # cannot tell: do not call a live process dead


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
