"""The console's run stop (engines/runs.stop_run) with real processes: the pid in run.json gets
SIGTERM only while it is still that run's trainer; a reused pid is refused and left alone."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from trainledger.engines.runs import StopRefused, stop_run
from trainledger.engines.workspace import RunInfo

pytestmark = pytest.mark.slow

WAITS = "import sys, time\nprint('ready', flush=True)\ntime.sleep(120)\n"


@pytest.fixture
def spawn() -> Iterator[Callable[[list[str]], subprocess.Popen[str]]]:
    """Start processes that print `ready`; all are killed after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(argv: list[str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def running(pid: int, run_id: str, started: float) -> RunInfo:
    return RunInfo(id=run_id, path=Path("/nonexistent") / run_id, status="running",
                   started=started, host=socket.gethostname(), pid=pid)  # fmt: skip


def still_running(proc: subprocess.Popen[str]) -> bool:
    try:
        proc.wait(0.5)
    except subprocess.TimeoutExpired:
        return True
    return False


def test_a_trainer_naming_its_run_gets_sigterm_even_when_resumed_later(spawn) -> None:
    proc = spawn([sys.executable, "-c", WAITS, "--run-id", "run-a"])
    # a resumed run keeps the first start time, long before this process was created
    info = running(proc.pid, "run-a", started=time.time() - 3600)
    assert "sent SIGTERM" in stop_run(info)
    assert proc.wait(30) != 0


def test_a_reused_pid_is_refused_and_not_signalled(spawn) -> None:
    proc = spawn(["sh", "-c", "echo ready; exec sleep 120"])
    with pytest.raises(StopRefused, match=str(proc.pid)):
        stop_run(running(proc.pid, "run-a", started=time.time()))
    assert still_running(proc)


def test_a_trainledger_trainer_with_its_own_id_is_known_by_its_start_time(spawn) -> None:
    proc = spawn([sys.executable, "-c", WAITS, "trainledger", "train", "ternary-vae"])
    created = psutil.Process(proc.pid).create_time()
    # the run began long before this process existed: the pid was taken by a newer one
    with pytest.raises(StopRefused):
        stop_run(running(proc.pid, "run-b", started=created - 60))
    assert still_running(proc)
    # the run began as this process did: it is that run's trainer
    assert "sent SIGTERM" in stop_run(running(proc.pid, "run-b", started=created))
    assert proc.wait(30) != 0
