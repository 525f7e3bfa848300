"""The server as a real background process: every acknowledged frame survives `kill -9`,
concurrent writers never interleave partial lines, and start/status/stats/stop round-trip."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from trainledger.engines.capture.live import fetch_stats
from trainledger.engines.capture.process import (
    CaptureServerError,
    ServerState,
    log_file,
    server_state,
    start_server,
    state_file,
    stop_server,
)
from trainledger.engines.capture.schema import FrameError, decode_frame
from trainledger.engines.workspace import Workspace

from .conftest import HEADERS, line


class Poster(threading.Thread):
    """Posts `batch`-frame requests on one keep-alive connection until the server dies,
    recording the frame numbers of every acknowledged request."""

    def __init__(self, state: ServerState, session: str, base: int, batch: int) -> None:
        super().__init__(daemon=True)
        self.state, self.session, self.base, self.batch = state, session, base, batch
        self.acked: list[int] = []
        self.error: str | None = None

    def run(self) -> None:
        conn = http.client.HTTPConnection(self.state.host, self.state.port, timeout=30)
        headers = dict(HEADERS, **{"X-MotionMix-SAN-Session": self.session})
        n = self.base
        try:
            while True:
                ids = list(range(n, n + self.batch))
                conn.request(
                    "POST", "/san-frame", b"\n".join(line(i) for i in ids), headers
                )
                resp = conn.getresponse()
                data = json.loads(resp.read())
                if resp.status != 200 or data["accepted"] != self.batch:
                    self.error = f"{resp.status} {data}"
                    return
                self.acked.extend(ids)
                n += self.batch
        except (OSError, http.client.HTTPException):
            return  # the server was killed


def _wait_for(cond, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _file_frames(path: Path) -> list[int]:
    """Frame numbers in a session file; fails if any line but a torn last one is not a frame.

    A SIGKILL can cut a multi-page write() short (Linux checks for fatal signals between
    pages), so the request in flight may leave a torn tail; it was never acknowledged, and
    the store starts the next frame on a fresh line (test_restart_after_kill_9...)."""
    lines = path.read_bytes().split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail:
        with pytest.raises(FrameError):
            decode_frame(tail)
    return [decode_frame(x).frame for x in lines]


@pytest.mark.parametrize("fsync", ["off", "batch"])
def test_every_acknowledged_frame_survives_kill_9(ws: Workspace, fsync: str) -> None:
    state = start_server(ws, port=0, fsync=fsync)
    poster = Poster(state, "dur", 0, 5)
    poster.start()
    _wait_for(lambda: len(poster.acked) >= 500 or poster.error is not None)
    assert poster.error is None
    os.kill(state.pid, signal.SIGKILL)
    poster.join(10)
    assert not poster.is_alive()
    on_disk = _file_frames(ws.captures_dir / "dur.jsonl")
    assert set(poster.acked) <= set(on_disk)
    assert len(on_disk) == len(set(on_disk))
    after = server_state(ws)
    assert (
        after is not None and after.pid == state.pid and not after.alive
    )  # stale file
    assert stop_server(ws) is False
    assert not state_file(ws).exists()


def test_two_clients_one_session_no_partial_lines_after_kill_9(ws: Workspace) -> None:
    state = start_server(ws, port=0, fsync="off")
    posters = [Poster(state, "shared", base, 60) for base in (0, 10_000_000)]
    for p in posters:
        p.start()
    _wait_for(lambda: all(len(p.acked) >= 1200 or p.error for p in posters))
    assert [p.error for p in posters] == [None, None]
    os.kill(state.pid, signal.SIGKILL)
    for p in posters:
        p.join(10)
    on_disk = _file_frames(ws.captures_dir / "shared.jsonl")  # every line parses
    assert set(posters[0].acked) | set(posters[1].acked) <= set(on_disk)
    # each request's 60 lines are contiguous and in order
    for i in range(0, len(on_disk), 60):
        block = on_disk[i : i + 60]
        assert block == list(range(block[0], block[0] + len(block)))


def test_restart_after_kill_9_appends_on_a_fresh_line(ws: Workspace) -> None:
    path = ws.captures_dir / "resume.jsonl"
    path.write_bytes(line(1) + b"\n" + line(2)[:50])  # a torn last line from a crash
    state = start_server(ws, port=0, fsync="always")
    conn = http.client.HTTPConnection(state.host, state.port, timeout=5)
    conn.request(
        "POST",
        "/san-frame",
        line(3),
        dict(HEADERS, **{"X-MotionMix-SAN-Session": "resume"}),
    )
    assert conn.getresponse().status == 200
    conn.close()
    assert stop_server(ws) is True
    lines = path.read_bytes().split(b"\n")
    assert lines == [line(1), line(2)[:50], line(3), b""]


def test_start_status_stats_stop_round_trip(ws: Workspace) -> None:
    state = start_server(ws, port=0, fsync="always", token="tok")
    try:
        assert state.alive and state.port > 0 and state.fsync == "always"
        assert state.url == f"http://127.0.0.1:{state.port}" and state.token_required
        recorded = json.loads(state_file(ws).read_text())
        assert set(recorded) == {
            "pid",
            "host",
            "port",
            "url",
            "fsync",
            "token_required",
            "started_at",
        }
        assert server_state(ws) == state
        with pytest.raises(CaptureServerError, match="already runs"):
            start_server(ws, port=0)
        assert fetch_stats(state.url) is None  # the token is needed for /stats
        stats = fetch_stats(state.url, "tok")
        assert (
            stats is not None
            and stats.port == state.port
            and stats.fsync == "always"
        )
        out = subprocess.run(
            [sys.executable, "-m", "trainledger.engines.capture", "status", "--workspace", str(ws.root),
             "--token", "tok"],
            check=False, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert state.url in out.stdout and "frames accepted 0" in out.stdout
    finally:
        assert stop_server(ws) is True
    assert server_state(ws) is None
    assert not state_file(ws).exists()
    log = log_file(ws).read_text()
    assert f"listening on {state.url}" in log and "Traceback" not in log
    assert fetch_stats(state.url, "tok") is None


def test_start_failure_reports_the_log(ws: Workspace) -> None:
    with pytest.raises(
        CaptureServerError, match="refusing to listen on 0.0.0.0 without a token"
    ):
        start_server(ws, host="0.0.0.0", port=0)
    assert server_state(ws) is None


def test_cli_refuses_public_bind_without_token(ws: Workspace) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRAINLEDGER_CAPTURE_TOKEN"}
    out = subprocess.run(
        [sys.executable, "-m", "trainledger.engines.capture", "serve", "--host", "::", "--port", "0",
         "--workspace", str(ws.root)],
        check=False, capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert out.returncode == 2
    assert "without a token" in out.stderr


def test_a_reused_pid_is_not_taken_for_the_server(ws: Workspace) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        state_file(ws).parent.mkdir(parents=True, exist_ok=True)
        state_file(ws).write_text(json.dumps({
            "pid": other.pid, "host": "127.0.0.1", "port": 1, "url": "http://127.0.0.1:1",
            "fsync": "batch", "token_required": False, "started_at": time.time() - 100,
        }))  # fmt: skip
        state = server_state(ws)
        assert state is not None and state.pid == other.pid and not state.alive
        assert stop_server(ws) is False  # stale: the file goes, the other process stays
        assert not state_file(ws).exists()
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_foreground_serve_prints_its_url_and_exits_cleanly_on_sigterm(
    ws: Workspace,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRAINLEDGER_CAPTURE_TOKEN"}
    cmd = [sys.executable, "-m", "trainledger.engines.capture", "serve", "--port", "0",
           "--workspace", str(ws.root), "--fsync", "always"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        _wait_for(lambda: (s := server_state(ws)) is not None and s.pid == proc.pid)
        state = server_state(ws)
        assert state is not None and state.alive and state.fsync == "always"
        conn = http.client.HTTPConnection(state.host, state.port, timeout=5)
        conn.request("POST", "/san-frame", line(5), HEADERS)
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert f"listening on {state.url}" in out
    assert str(ws.captures_dir) in out and "fsync: always" in out and "curl" in out
    assert not state_file(ws).exists()
    assert (ws.captures_dir / "sess-1.jsonl").read_bytes() == line(5) + b"\n"
    stop = subprocess.run(
        [sys.executable, "-m", "trainledger.engines.capture", "stop", "--workspace", str(ws.root)],
        check=False, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert stop.returncode == 1 and "no capture server" in stop.stdout


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/<pid>/maps (Linux)")
def test_the_server_process_never_loads_numpy(ws: Workspace) -> None:
    """numpy in the server's process cost about a fifth of its 1-frame request rate
    (docs/benchmarks.md, issue 9): `capture serve` builds the `send` parsers, whose frame
    synthesiser needs numpy, so that module must load it only where frames are made."""
    state = start_server(ws, port=0, fsync="off")
    try:
        maps = Path(f"/proc/{state.pid}/maps").read_text()
        assert "/numpy/" not in maps and "numpy.libs" not in maps
        assert state.alive
    finally:
        stop_server(ws)
