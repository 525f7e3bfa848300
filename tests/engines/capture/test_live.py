"""The read side of a running server: typed /stats, the poll, the poller, the merge with files."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import msgspec

from trainledger.engines.capture.live import (
    Poller,
    ServerStats,
    SessionSeen,
    decode_stats,
    fetch_stats,
    is_live,
    merge_sessions,
    poll_server,
    server_fps,
)
from trainledger.engines.capture.sessions import SessionScanner
from trainledger.engines.workspace import init_workspace


def test_decode_stats_is_typed_and_refuses_the_wrong_shape() -> None:
    body = {"version": 1, "port": 9471, "frames_accepted": 3, "new_field": [1],
            "sessions": {"s1": {"accepted": 2, "rejected": 1, "last_at": 5.5}},
            "recent_fps": [[100, 2], [101, 1]], "rejects_by_reason": {"ts: missing": 1}}  # fmt: skip
    stats = decode_stats(msgspec.json.encode(body))
    assert isinstance(stats, ServerStats)
    assert stats.sessions["s1"] == SessionSeen(accepted=2, rejected=1, last_at=5.5)
    assert stats.recent_fps == [(100, 2), (101, 1)]
    for bad in (b"[]", b"not json", b'{"frames_accepted": "three"}', b'{"sessions": {"s": 1}}'):
        assert decode_stats(bad) is None


def test_fetch_from_a_real_server(server) -> None:
    stats = fetch_stats(server.url)
    assert stats is not None and stats.port == server.port and stats.fsync == "batch"
    assert fetch_stats("http://127.0.0.1:9") is None  # nothing listens: None, quickly


def test_poll_without_a_server(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    poll = poll_server(ws)
    assert poll.state is None and poll.stats is None and poll.available


def test_poller_never_overlaps_survives_a_failing_poll_and_stops() -> None:
    calls: list[float] = []
    running = threading.Lock()
    delivered: list[int] = []

    def poll() -> int:
        assert running.acquire(blocking=False), "two polls at once"
        try:
            calls.append(time.monotonic())
            if len(calls) == 2:
                raise RuntimeError("the server answered nonsense")
            time.sleep(0.02)
            return len(calls)
        finally:
            running.release()

    stop = threading.Event()
    poller = Poller(poll, delivered.append, interval=0.01)
    thread = threading.Thread(target=poller.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while len(delivered) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert poller.failures == 1 and 2 not in delivered and delivered[:3] == [1, 3, 4]


def test_merge_and_liveness(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    (ws.captures_dir / "on-disk.jsonl").write_text("")
    snap = SessionScanner(ws.captures_dir).scan()
    stats = ServerStats(sessions={"on-disk": SessionSeen(1, 0, last_at=1000.0),
                                  "server-only": SessionSeen(0, 3, last_at=1000.0)})  # fmt: skip
    merged = merge_sessions(snap.sessions, stats, ws.captures_dir)
    assert list(merged) == ["on-disk", "server-only"]
    assert merged["server-only"].rejected == 3 and merged["server-only"].frames == 0
    assert merge_sessions(snap.sessions, None, ws.captures_dir).keys() == {"on-disk"}
    file_only = merged["on-disk"]
    assert is_live(file_only, stats, now=1003.0)
    assert not is_live(file_only, stats, now=file_only.mtime + 60)


def test_server_fps_fills_quiet_seconds() -> None:
    stats = ServerStats(recent_fps=[(100, 2), (102, 5)])
    fps = server_fps(stats, now=103.0)
    assert fps is not None and fps[-4:] == (2, 0, 5, 0)
    assert server_fps(ServerStats(), 1.0) is None and server_fps(None, 1.0) is None
