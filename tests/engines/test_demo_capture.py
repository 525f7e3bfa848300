"""The demo's live capture: a real server on a free port, a real sender child, frames on disk,
and nothing left running afterwards (stop_all, or the parent killed with SIGKILL)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from trainledger.engines.capture.schema import check_line
from trainledger.engines.demo import CAPTURE_LOG, DemoProcesses, prepare_demo_workspace
from trainledger.engines.workspace import Workspace

process = pytest.importorskip("trainledger.engines.capture.process")

pytestmark = pytest.mark.slow


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    ws = prepare_demo_workspace(tmp_path / "demo")
    yield ws
    process.stop_server(ws)


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def demo_lines(ws: Workspace) -> list[bytes]:
    return [
        line
        for p in ws.captures_dir.glob("demo-*.jsonl")
        for line in p.read_bytes().splitlines()
    ]


def test_start_capture_streams_frames_and_stop_all_leaves_nothing(
    ws: Workspace,
) -> None:
    procs = DemoProcesses(ws)
    try:
        state = procs.start_capture()
        sender = procs.capture_sender
        assert sender is not None and state.alive and state.port != 9471
        assert re.fullmatch(r"demo-\d{8}-\d{6}", procs.capture_session or "")
        wait_for(lambda: len(demo_lines(ws)) >= 40, 20, "40 demo frames on disk")
        (path,) = ws.captures_dir.glob("demo-*.jsonl")
        assert path.stem == procs.capture_session
        lines = demo_lines(ws)
        assert all(check_line(line) is None for line in lines)
        assert [json.loads(line)["frame"] for line in lines[:40]] == list(range(40))
        assert sender.poll() is None and not gone(state.pid)
    finally:
        procs.stop_all()
    assert gone(sender.pid) and gone(state.pid)
    assert process.server_state(ws) is None
    assert "streaming session demo-" in (procs.logs_dir / CAPTURE_LOG).read_text()


def test_sender_and_server_exit_when_the_demo_process_is_killed(ws: Workspace) -> None:
    code = (
        "import sys, time\n"
        "from trainledger.engines.demo import DemoProcesses\n"
        "from trainledger.engines.workspace import open_workspace\n"
        "procs = DemoProcesses(open_workspace(sys.argv[1]))\n"
        "state = procs.start_capture()\n"
        "print(procs.capture_sender.pid, state.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code, str(ws.root)], stdout=subprocess.PIPE, text=True
    )
    try:
        sender_pid, server_pid = map(int, parent.stdout.readline().split())
        wait_for(lambda: len(demo_lines(ws)) >= 5, 20, "demo frames on disk")
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_for(lambda: gone(sender_pid), 10, "the orphaned sender to exit")
        wait_for(lambda: gone(server_pid), 10, "the orphaned server to exit")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        process.stop_server(ws)
    assert process.server_state(ws) is None  # it stopped cleanly: its state file is gone
    frames = demo_lines(ws)
    assert frames and all(line.endswith(b"}") for line in frames)


def test_a_server_that_cannot_start_raises_and_is_logged(ws: Workspace) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        procs = DemoProcesses(ws)
        with pytest.raises(process.CaptureServerError):
            procs.start_capture(port=busy.getsockname()[1])
    assert procs.capture_sender is None
    assert "capture server did not start" in (procs.logs_dir / CAPTURE_LOG).read_text()
    procs.stop_all()  # nothing to stop is not an error
