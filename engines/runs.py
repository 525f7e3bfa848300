"""Run control for the console: start a trainer process, stop one, read its system.jsonl tail.

The console must never import torch and never block its UI thread, so it starts trainers as
detached subprocesses (`python -m trainledger train ...` in a session of their own, logging to
<workspace>/.trainledger/logs/<run-id>.log) and calls these functions from thread workers.
Runs started here outlive the console: nothing ties them to its lifetime.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import msgspec

from trainledger.engines.metrics.writer import new_run_id
from trainledger.engines.procs import Expect, Launched, StopResult, is_same_process, launch, stop, why_not_same
from trainledger.engines.safeio import open_regular_file
from trainledger.engines.workspace import RunInfo, Workspace, validate_id

SYSTEM_FILE = "system.jsonl"  # as engines/training/system.py writes it (that module is not imported here)
BACKENDS = ("torch", "mlx")


@dataclass
class StartedRun:
    run_id: str
    launched: Launched

    @property
    def log_path(self) -> Path:
        assert self.launched.log_path is not None
        return self.launched.log_path

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self.launched.proc is not None
        return self.launched.proc

    @property
    def pid(self) -> int:
        return self.launched.pid


def logs_dir(ws: Workspace) -> Path:
    return ws.state_dir / "logs"


def train_command(
    ws: Workspace,
    model: str,
    run_id: str,
    *,
    data: str | None = None,
    backend: str = "torch",
    epochs: int | None = None,
    settings: Sequence[str] = (),
    name: str | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    base: str | None = None,
) -> list[str]:
    """The `trainledger train` command line of a run started from the console."""
    args = [sys.executable, "-m", "trainledger", "train", model,
            "--workspace", str(ws.root), "--run-id", run_id, "--backend", backend]  # fmt: skip
    if data:
        args += ["--data", data]
    if epochs is not None:
        args += ["--epochs", str(int(epochs))]
    if name:
        args += ["--name", name]
    if lr is not None:
        args += ["--lr", repr(float(lr))]
    if batch_size is not None:
        args += ["--batch-size", str(int(batch_size))]
    if base:
        args += ["--base", base]
    for item in settings:
        args += ["--set", item]
    return args


def start_run(
    ws: Workspace,
    model: str,
    *,
    data: str | None = None,
    backend: str = "torch",
    epochs: int | None = None,
    settings: Sequence[str] = (),
    run_id: str | None = None,
    name: str | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    base: str | None = None,
) -> StartedRun:
    """Start a trainer detached from this process; returns at once with its run id and log."""
    run_id = validate_id(run_id, "run id") if run_id else new_run_id(model)
    args = train_command(ws, model, run_id, data=data, backend=backend, epochs=epochs, settings=settings,
                         name=name, lr=lr, batch_size=batch_size, base=base)  # fmt: skip
    # a session of its own: Ctrl-C or quitting the console does not reach it
    return StartedRun(run_id, launch(args, logs_dir(ws) / f"{run_id}.log", run_log=run_id))


def wait_exit(proc: subprocess.Popen[bytes], cancelled: threading.Event, poll: float = 0.5) -> int | None:
    """The exit code once the process ends, however long it runs; None if `cancelled` is set
    first (the console quit: the trainer goes on without it)."""
    while not cancelled.is_set():
        try:
            return proc.wait(poll)
        except subprocess.TimeoutExpired:
            continue
    return None


def describe_exit(code: int) -> str:
    """An exit status as a person reads it: `exited with status 2`, `killed by signal 9 (SIGKILL)`."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            return f"killed by signal {-code}"
        return f"killed by signal {-code} ({name})"
    return f"exited with status {code}"


def tail_lines(path: Path, n: int = 5, max_bytes: int = 16384) -> list[str]:
    """The last `n` non-empty lines of a text file, reading only its end."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-n:]


def last_line(path: Path, max_bytes: int = 8192) -> bytes | None:
    """The last complete line of a file, found by seeking from its end; None if there is none.

    Only a regular file is read (a FIFO would block), and at most `max_bytes` of it.
    """
    try:
        with open_regular_file(path) as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size == 0:
                return None
            fh.seek(max(0, size - max_bytes))
            data = fh.read(max_bytes)
    except OSError:
        return None
    if not data.endswith(b"\n"):  # a half-written last row: use the one before it
        cut = data.rfind(b"\n")
        if cut < 0:
            return None
        data = data[: cut + 1]
    lines = [ln for ln in data.splitlines() if ln.strip()]
    return lines[-1] if lines else None


def read_system(run_dir: Path) -> dict[str, Any] | None:
    """The newest row of `<run_dir>/system.jsonl`, or None if missing or unreadable."""
    line = last_line(Path(run_dir) / SYSTEM_FILE)
    if line is None:
        return None
    try:
        row = msgspec.json.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return None
    return row if isinstance(row, dict) else None


# --------------------------------------------------------------------------- stopping


class StopRefused(Exception):
    """The run cannot be stopped from here; the message says why."""


def stop_plan(info: RunInfo, host: str | None = None) -> str:
    """What stopping `info` will do, or raise StopRefused saying why it cannot be stopped."""
    host = host or socket.gethostname()
    if info.status != "running":
        raise StopRefused(f"run {info.id} is {info.status}, not running: nothing to stop")
    if info.host and info.host != host:
        raise StopRefused(f"run {info.id} runs on {info.host}, not on this host ({host}); stop it there")
    if not info.pid:
        raise StopRefused(f"run {info.id} has no pid in its run.json")
    return (f"send SIGTERM to pid {info.pid} (run {info.id}); "
            "it writes a last checkpoint and ends as stopped")  # fmt: skip


def verify_trainer(pid: int, run_id: str, started: float | None = None) -> tuple[Launched, Expect]:
    """Raise StopRefused unless `pid` is a live python process that is this run's trainer;
    return the record and expectation it passed, for `procs.stop`.

    Its command line must name `run_id`, or (a trainer that generated its own id) name
    trainledger and have been created no later than the run started: a recycled pid is newer.
    (No start time is asked of the first: a resumed run keeps its first start time.)
    """
    named, expect = Launched(pid, None, ()), _trainer_of(run_id)
    why = why_not_same(named, expect)
    if why is None:
        return named, expect
    if started is not None:
        own = Launched(pid, started + 1.0, ())  # created at most 2 s after the run started
        if is_same_process(own, _TRAINLEDGER):
            return own, _TRAINLEDGER
    raise StopRefused(f"not stopping pid {pid} (run {run_id}): {why}")


def _python(cmdline: Sequence[str]) -> bool:
    return bool(cmdline) and "python" in os.path.basename(cmdline[0]).lower()


def _trainer_of(run_id: str) -> Expect:
    return Expect(f"a python process naming run {run_id}",
                  lambda cmdline: _python(cmdline) and run_id in " ".join(cmdline))  # fmt: skip


_TRAINLEDGER = Expect("a trainledger trainer", lambda cmdline: _python(cmdline) and "trainledger" in " ".join(cmdline))


def stop_run(info: RunInfo, host: str | None = None) -> str:
    """SIGTERM the trainer of `info` after checking it is still that trainer; returns what was done.

    Not waited for, and never SIGKILL: the trainer ends its step and writes a last checkpoint.
    """
    stop_plan(info, host)
    assert info.pid is not None
    record, expect = verify_trainer(info.pid, info.id, info.started)
    if stop(record, None, expect=expect) is StopResult.GONE:
        raise StopRefused(f"pid {info.pid} is gone or not ours to signal: run {info.id} was not stopped")
    return f"sent SIGTERM to pid {info.pid} (run {info.id})"
