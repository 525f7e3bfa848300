"""`capture stop` signals only a capture server: a state file that names another process
(forged, or stale with the pid reused by something that started earlier) kills nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from trainledger.engines.capture.process import (
    not_a_server,
    start_server,
    state_file,
    stop_server,
)
from trainledger.engines.workspace import Workspace


def _forge(ws: Workspace, pid: int) -> None:
    state_file(ws).parent.mkdir(parents=True, exist_ok=True)
    state_file(ws).write_text(json.dumps({
        "pid": pid, "host": "127.0.0.1", "port": 1, "url": "http://127.0.0.1:1",
        "fsync": "batch", "token_required": False, "started_at": time.time() + 60,
    }))  # fmt: skip


def _exec_done(pid: int) -> psutil.Process:
    """The process once its command line reads back (it is empty for a moment during exec)."""
    proc = psutil.Process(pid)
    deadline = time.monotonic() + 20
    while not proc.cmdline() and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


def test_capture_stop_refuses_a_state_file_naming_an_unrelated_process(ws: Workspace) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        _forge(ws, sleeper.pid)  # started_at after the sleeper: it passes the pid check
        env = {k: v for k, v in os.environ.items() if k != "TRAINLEDGER_CAPTURE_TOKEN"}
        out = subprocess.run(
            [sys.executable, "-m", "trainledger.engines.capture", "stop", "--workspace", str(ws.root)],
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )  # fmt: skip
        assert out.returncode != 0
        assert f"not stopping pid {sleeper.pid}" in out.stderr and "sleep" in out.stderr
        with pytest.raises(subprocess.TimeoutExpired):  # still running: no signal reached it
            sleeper.wait(0.5)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_real_server_is_recognised_and_stopped(ws: Workspace) -> None:
    state = start_server(ws, port=0, timeout=30)
    try:
        assert not_a_server(psutil.Process(state.pid)) is None
    finally:
        assert stop_server(ws) is True
    assert not psutil.pid_exists(state.pid) or psutil.Process(state.pid).status() == psutil.STATUS_ZOMBIE


def test_the_trainledger_command_counts_as_a_server_and_look_alikes_do_not(tmp_path: Path) -> None:
    script = tmp_path / "trainledger"  # stands in for the console script, which sleeps
    script.write_text("import time\ntime.sleep(30)\n")
    cases = {("capture", "serve", "--port", "0"): True, ("capture", "status"): False,
             ("serve", "capture"): False}  # fmt: skip
    assert not_a_server(psutil.Process()) is not None  # pytest is not a capture server
    for args, is_server in cases.items():
        proc = subprocess.Popen([sys.executable, str(script), *args])
        try:
            assert (not_a_server(_exec_done(proc.pid)) is None) is is_server, args
        finally:
            proc.kill()
            proc.wait()
