"""The one process launcher of the engines: start a detached child with its log in the
workspace, know it again later, stop it.

Its users: the console's training runs (`runs.py`), the demo's trainer, capture server and
sender (`demo.py`), the capture server in the background (`capture/process.py`); next, the
port servers. Each child runs in a session of its own (Ctrl-C in the console's terminal, or the
console quitting, does not reach it), with stdin from /dev/null and stdout+stderr appended to
its log file, unbuffered (`PYTHONUNBUFFERED=1`).

A `Launched` record (pid, start time, command line) is what callers keep or write down. A pid
alone is not an identity: once the process ends the kernel hands the number to the next one.
`is_same_process` therefore also compares the start time (a reused pid belongs to a process
created later) and the command line with the live process, and `stop` signals only a process
that passes; anything else is reported gone and never signalled.

psutil is imported inside the functions, as in `pids.py`: the console imports the users of
this module at start and must start fast.
"""

from __future__ import annotations

import enum
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainledger.engines.pids import live_process

EXIT_WITH_PARENT = "--exit-with-parent"  # every trainledger child takes it: watch the parent, stop when it dies
KILL_WAIT_S = 5.0  # how long a SIGKILLed process gets to disappear
_EXEC_WAIT_S = (
    0.5  # a process in the middle of exec shows an empty command line for a moment
)


@dataclass(frozen=True)
class Launched:
    """One process as recorded: enough to find it again and to tell it from a reused pid.

    `started_at` is when the process was created (seconds since the epoch; an upper bound is
    fine, e.g. a time the process wrote down itself), or None when not known. `proc` is the
    Popen handle, only in the process that launched it (it collects the exit status).
    """

    pid: int
    started_at: float | None
    argv: tuple[str, ...]
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(
        default=None, compare=False, repr=False
    )


@dataclass(frozen=True)
class Expect:
    """What the live command line must look like when the exact one was not recorded (a
    process started by someone else: `trainledger capture serve` in a tmux window, a run's
    trainer known from its run.json). `what` names it in reasons: "a capture server's"."""

    what: str
    cmdline_ok: Callable[[Sequence[str]], bool]


class StopResult(enum.Enum):
    GONE = "already gone"  # it had exited, or the pid is now another process's: nothing was signalled
    STOPPED = "stopped"  # it exited after SIGTERM within the deadline
    KILLED = "killed"  # it was still there at the deadline and got SIGKILL
    SIGNALLED = "signalled"  # SIGTERM sent, not waited for (deadline None)


RUN_LOG_ENV = "TRAINLEDGER_RUN_LOG"  # "<run id or *>=<log path>", set by launch(run_log=...)


def launched_run_log(run_id: str) -> str | None:
    """The log path a launcher gave for `run_id` (or for every run), else None."""
    owner, sep, path = os.environ.get(RUN_LOG_ENV, "").partition("=")
    return path if sep and path and owner in (run_id, "*") else None


def launch(
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    exit_with_parent: bool = False,
    cwd: Path | None = None,
    run_log: str | None = None,
) -> Launched:
    """Start `argv` detached, appending its output to `log_path`; returns once it was exec'd.

    `env` replaces this process's environment (default: inherit it). With `exit_with_parent`
    the child gets `--exit-with-parent` (if it lacks it) and stops when this process exits,
    even by SIGKILL: the trainledger children watch their parent with `pids.parent_alive`.
    With `run_log` (a run id, or `*` for every run the child makes) the child's MetricsWriter
    names `log_path` in that run's run.json (`log`), so the run screen finds the log wherever
    it is. Raises OSError when the program cannot be started.
    """
    args = list(argv)
    if exit_with_parent and EXIT_WITH_PARENT not in args:
        args.append(EXIT_WITH_PARENT)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    child_env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    child_env.pop(RUN_LOG_ENV, None)  # never a grandparent's: only the child it was set for
    if run_log is not None:
        child_env[RUN_LOG_ENV] = f"{run_log}={log_path.resolve()}"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=child_env,
            cwd=cwd,
        )
    return Launched(proc.pid, _create_time(proc.pid), tuple(args), log_path, proc)


def _create_time(pid: int) -> float:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return time.time()  # it was created before now: still an upper bound


# --------------------------------------------------------------------------- recognising


def why_not_same(record: Launched, expect: Expect | None = None) -> str | None:
    """None if `record`'s process still runs; else why not, as a clause ("it has exited").

    The live process must not be a zombie, must not have been created after
    `record.started_at` (give or take pids.START_SLACK_S), and its command line must be
    `record.argv` (or, run through a `#!` interpreter, end with it), or pass `expect`.
    """
    return _identify(record, expect)[1]


def is_same_process(record: Launched, expect: Expect | None = None) -> bool:
    """True while `record`'s own process runs; a pid reused by another process never passes."""
    return why_not_same(record, expect) is None


def _identify(record: Launched, expect: Expect | None) -> tuple[Any, str | None]:
    """The live psutil.Process of `record` and None, or None and why it is not there."""
    import psutil

    proc, why = live_process(record.pid, record.started_at)
    if proc is None:
        return None, why
    try:
        cmdline = _cmdline(proc)
    except psutil.NoSuchProcess:
        return None, "it has exited"
    except psutil.AccessDenied:
        return None, "not allowed to read its command line"
    except psutil.Error as exc:
        return None, f"cannot read its command line ({type(exc).__name__})"
    ok = (
        expect.cmdline_ok(cmdline)
        if expect is not None
        else _argv_matches(cmdline, record.argv)
    )
    if not ok:
        shown = " ".join(cmdline)[:120] or _name(proc)
        what = expect.what if expect is not None else "the recorded one"
        return None, f"its command line is not {what} ({shown!r})"
    return proc, None


def _cmdline(proc: Any) -> list[str]:
    cmdline = list(proc.cmdline())
    deadline = time.monotonic() + _EXEC_WAIT_S
    while (
        not cmdline and time.monotonic() < deadline
    ):  # exec'ing right now, or a kernel thread
        time.sleep(0.01)
        cmdline = list(proc.cmdline())
    return cmdline


def _name(proc: Any) -> str:
    import psutil

    try:
        return str(proc.name())
    except psutil.Error:
        return "?"


def _argv_matches(live: Sequence[str], recorded: Sequence[str]) -> bool:
    """`live` is `recorded`, or `recorded` run through a `#!` line: the kernel puts the
    interpreter (and its one optional argument) first and the script's full path for argv[0]."""
    if list(live) == list(recorded):
        return True
    if not recorded:
        return False
    extra = len(live) - len(recorded)
    if extra not in (1, 2):
        return False
    script, rest = live[extra], live[extra + 1 :]
    return list(rest) == list(recorded[1:]) and os.path.basename(
        script
    ) == os.path.basename(recorded[0])


# --------------------------------------------------------------------------- stopping


def stop(
    record: Launched,
    deadline_s: float | None,
    *,
    expect: Expect | None = None,
    group: bool = False,
) -> StopResult:
    """SIGTERM `record`'s process, SIGKILL it if it is still there after `deadline_s` seconds
    (None: send SIGTERM and return at once). A process that fails `is_same_process` is not
    signalled: GONE. With `group`, its whole process group is signalled (a launched child
    leads its own), so the children it started go too."""
    return stop_all([record], deadline_s, expect=expect, group=group)[0]


def stop_all(
    records: Sequence[Launched],
    deadline_s: float | None,
    *,
    expect: Expect | None = None,
    group: bool = False,
) -> list[StopResult]:
    """`stop` for several processes at once: SIGTERM them all, wait up to `deadline_s` in all,
    then SIGKILL the rest. One StopResult per record, in order."""
    results = [StopResult.GONE] * len(records)
    live: dict[int, Any] = {}
    for i, record in enumerate(records):
        proc, _why = _identify(record, expect)
        if proc is not None and _signal(record, proc, signal.SIGTERM, group):
            live[i] = proc
            results[i] = StopResult.SIGNALLED
    if deadline_s is not None:
        _wait_gone(records, live, deadline_s)
        for i, proc in live.items():
            results[i] = StopResult.STOPPED
            if not _gone(records[i], proc):
                results[i] = StopResult.KILLED
                _signal(records[i], proc, signal.SIGKILL, group)
        _wait_gone(
            records,
            {i: p for i, p in live.items() if results[i] is StopResult.KILLED},
            KILL_WAIT_S,
        )
        for i in live:
            _reap(records[i])
    return results


def _signal(record: Launched, proc: Any, sig: signal.Signals, group: bool) -> bool:
    """Send `sig`; False if the process was gone (or is no longer the same one)."""
    import psutil

    try:
        if group and proc.is_running() and os.getpgid(record.pid) == record.pid:
            os.killpg(record.pid, sig)
        else:
            proc.send_signal(sig)  # psutil refuses a pid that was reused meanwhile
        return True
    except (
        ProcessLookupError,
        PermissionError,
        psutil.NoSuchProcess,
        psutil.AccessDenied,
    ):
        return False


def _gone(record: Launched, proc: Any) -> bool:
    import psutil

    if record.proc is not None:
        return record.proc.poll() is not None
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(
    records: Sequence[Launched], live: Mapping[int, Any], timeout: float
) -> None:
    deadline = time.monotonic() + max(0.0, timeout)
    waiting = dict(live)
    while waiting:
        waiting = {i: p for i, p in waiting.items() if not _gone(records[i], p)}
        if not waiting or time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def _reap(record: Launched) -> None:
    """Collect the exit status of a child of this process, so no zombie is left behind."""
    if record.proc is not None:
        record.proc.poll()
        return
    try:
        os.waitpid(record.pid, os.WNOHANG)
    except ChildProcessError:
        pass
