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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import msgspec

from trainledger.engines.metrics.writer import new_run_id
from trainledger.engines.safeio import open_regular_file
from trainledger.engines.workspace import RunInfo, Workspace, validate_id

SYSTEM_FILE = "system.jsonl"  # as engines/training/system.py writes it (that module is not imported here)
BACKENDS = ("torch", "mlx")


@dataclass
class StartedRun:
    run_id: str
    log_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid


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
) -> list[str]:
    args = [sys.executable, "-m", "trainledger", "train", model,
            "--workspace", str(ws.root), "--run-id", run_id, "--backend", backend]  # fmt: skip
    if data:
        args += ["--data", data]
    if epochs is not None:
        args += ["--epochs", str(int(epochs))]
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
) -> StartedRun:
    """Start a trainer detached from this process; returns at once with its run id and log."""
    run_id = validate_id(run_id, "run id") if run_id else new_run_id(model)
    args = train_command(ws, model, run_id, data=data, backend=backend, epochs=epochs, settings=settings)
    log_path = logs_dir(ws) / f"{run_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C or quitting the console does not reach it
            close_fds=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return StartedRun(run_id, log_path, proc)


def early_exit(proc: subprocess.Popen[bytes], within: float = 2.0) -> int | None:
    """The exit code if the process ends within `within` seconds, else None (still running)."""
    try:
        return proc.wait(within)
    except subprocess.TimeoutExpired:
        return None


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


def verify_trainer(pid: int, run_id: str, started: float | None = None) -> None:
    """Raise StopRefused unless `pid` is a live python process that is this run's trainer.

    Its command line must name `run_id`, or (a trainer that generated its own id) name
    trainledger and have been created no later than the run started: a recycled pid is newer.
    """
    import psutil

    try:
        proc = psutil.Process(pid)
        cmdline = proc.cmdline()
        name = proc.name()
    except psutil.NoSuchProcess:
        raise StopRefused(f"pid {pid} is gone: run {run_id} is no longer running") from None
    except psutil.AccessDenied:
        raise StopRefused(f"pid {pid}: not allowed to inspect it") from None
    joined = " ".join(cmdline)
    if "python" not in (name + " " + (cmdline[0] if cmdline else "")).lower():
        raise StopRefused(f"pid {pid} is {name!r}, not a python trainer (the pid was reused?)")
    own_id = (started is not None and "trainledger" in joined
              and _create_time(proc) <= started + 2.0)  # fmt: skip
    if run_id not in joined and not own_id:
        raise StopRefused(f"pid {pid} does not mention run {run_id} in its command line (the pid was reused?)")


def _create_time(proc: Any) -> float:
    try:
        return float(proc.create_time())
    except Exception:
        return float("inf")


def stop_run(info: RunInfo, host: str | None = None) -> str:
    """SIGTERM the trainer of `info` after checking it is still that trainer; returns what was done."""
    stop_plan(info, host)
    assert info.pid is not None
    verify_trainer(info.pid, info.id, info.started)
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        raise StopRefused(f"pid {info.pid} is gone: run {info.id} is no longer running") from None
    except PermissionError:
        raise StopRefused(f"pid {info.pid}: not allowed to signal it") from None
    return f"sent SIGTERM to pid {info.pid} (run {info.id})"


def wait_gone(pid: int, timeout: float) -> bool:
    """True once `pid` has exited (or is a zombie) within `timeout` seconds."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False
