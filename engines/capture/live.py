"""The read side of a running capture server: typed /stats, one poll, and the merge with files.

The console's Capture pane used to fetch `/stats` itself, probe the untyped dict with
`isinstance` at every use, and re-arm its own 1 Hz timer. Here `/stats` is decoded once
into msgspec structs (a field of the wrong type makes the whole answer None, never a
crash later), `poll_server` reads the state file and the stats with a bounded timeout,
`Poller` runs any such poll at an interval on the caller's thread without overlapping,
and the session files are merged with what the server saw. The pane renders what it is
given. The Ports pane's prober uses `Poller` too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec

from trainledger.engines.capture.sessions import FPS_WINDOW, SessionSummary

LIVE_S = 5.0  # a session is live if written (or seen by the server) this recently
STATS_TIMEOUT_S = 1.0


class SessionSeen(msgspec.Struct, frozen=True):
    """What the running server counted for one session since it started."""

    accepted: int = 0
    rejected: int = 0
    last_at: float | None = None
    rejects_by_reason: dict[str, int] = {}  # this session's own kinds (servers before 14: none)


class ServerStats(msgspec.Struct, frozen=True):
    """The server's `GET /stats` (docs/formats.md); unknown fields are ignored."""

    version: int = 1
    host: str = ""
    port: int = 0
    fsync: str = ""
    requests: int = 0
    frames_accepted: int = 0
    frames_rejected: int = 0
    bytes_in: int = 0
    bad_requests: dict[str, int] = {}
    rejects_by_reason: dict[str, int] = {}
    recent_fps: list[tuple[int, int]] = []  # [unix second, frames]
    sessions: dict[str, SessionSeen] = {}


_DECODER = msgspec.json.Decoder(ServerStats)


def decode_stats(data: bytes) -> ServerStats | None:
    """`/stats` bytes as ServerStats; None for anything that is not that shape."""
    try:
        return _DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def fetch_stats(
    url: str, token: str | None = None, timeout: float = STATS_TIMEOUT_S
) -> ServerStats | None:
    """`GET {url}/stats` within `timeout` seconds; None on any failure (down, 401, bad body)."""
    import urllib.request

    req = urllib.request.Request(f"{url}/stats")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return decode_stats(resp.read(4 << 20))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class ServerPoll:
    """One look at the capture server: its record (None: none recorded) and its stats."""

    state: Any  # engines.capture.process.ServerState | None
    stats: ServerStats | None
    available: bool = True  # False when the server engine cannot be imported


def poll_server(workspace: Any, token: str | None = None) -> ServerPoll:
    """The state file and, if the recorded server is alive, its /stats (bounded by a timeout)."""
    try:
        from trainledger.engines.capture import process
    except ImportError:
        return ServerPoll(None, None, available=False)
    state = process.server_state(workspace)
    stats = fetch_stats(state.url, token) if state is not None and state.alive else None
    return ServerPoll(state, stats)


T = TypeVar("T")


class Poller(Generic[T]):
    """Call `poll` every `interval` s and hand each result to `deliver`, never overlapping.

    `run` blocks its thread until `stop` is set (a thread worker's cancelled event); the
    next poll starts `interval` s after the previous result was delivered, so a slow
    server slows the polls down instead of stacking them up. A poll that raises is
    delivered as nothing and the loop goes on.
    """

    def __init__(self, poll: Callable[[], T], deliver: Callable[[T], None], interval: float) -> None:
        self.poll = poll
        self.deliver = deliver
        self.interval = interval
        self.failures = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                result = self.poll()
            except Exception:  # noqa: BLE001 - one bad poll must not end the polling
                self.failures += 1
            else:
                if not stop.is_set():
                    self.deliver(result)
            stop.wait(self.interval)


# ---------------------------------------------------------------- merge with the files


def seen(stats: ServerStats | None, session_id: str) -> SessionSeen | None:
    return stats.sessions.get(session_id) if stats is not None else None


def is_live(s: SessionSummary, stats: ServerStats | None, now: float) -> bool:
    """Written to, or seen by the server, within the last LIVE_S seconds."""
    info = seen(stats, s.id)
    if info is not None and info.last_at is not None and now - info.last_at <= LIVE_S:
        return True
    return now - s.mtime <= LIVE_S


@dataclass(frozen=True)
class SessionCounts:
    """One session's counts as the table, the detail and the drill-down all show them.

    The file holds the frames a server accepted (and whatever else was dropped there); the
    frames a running server refused are answered to the client and never stored, so they
    exist only in its /stats. `rejected` adds the two: bad lines in the file plus frames
    the running server refused for this session since it started.
    """

    frames: int  # good frames in the file
    rejected: int  # file_rejected + server_rejected
    file_rejected: int
    server: SessionSeen | None  # what the running server counted for this session
    on_disk: bool
    reasons: tuple[tuple[str, str, int], ...]  # (source "file" | "server", reason, count)

    @property
    def server_rejected(self) -> int:
        return self.server.rejected if self.server is not None else 0


def session_counts(s: SessionSummary, stats: ServerStats | None, on_disk: bool = True) -> SessionCounts:
    """This session's counts and reasons: its file's and its own on the server, never another's."""
    info = seen(stats, s.id)
    file_rejected = s.rejected if on_disk else 0
    reasons = [("file", r, n) for r, n in s.reasons.items()] if on_disk else []
    if info is not None:
        reasons += [("server", r, int(n)) for r, n in
                    sorted(info.rejects_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))]  # fmt: skip
    server_rejected = info.rejected if info is not None else (0 if on_disk else s.rejected)
    return SessionCounts(
        frames=s.frames if on_disk else 0, rejected=file_rejected + server_rejected,
        file_rejected=file_rejected, server=info, on_disk=on_disk, reasons=tuple(reasons),
    )  # fmt: skip


def server_only_session(captures_dir: Path, sid: str, info: SessionSeen) -> SessionSummary:
    """A session in the server's /stats with no file yet: every frame it sent was rejected."""
    return SessionSummary(
        id=sid, path=captures_dir / f"{sid}.jsonl", valid_id=True, invalid_reason=None, size=0,
        mtime=0.0, frames=0, rejected=info.rejected, reasons={}, first_rejects=(),
        first_ts=None, last_ts=None, fps=(), latency=None, latency_range=None, newest=None,
        pending_bytes=0, version=info.rejected + info.accepted,
    )  # fmt: skip


def merge_sessions(
    files: list[SessionSummary] | tuple[SessionSummary, ...],
    stats: ServerStats | None,
    captures_dir: Path,
) -> dict[str, SessionSummary]:
    """The session files, then the sessions the running server saw but wrote no frame for."""
    out = {s.id: s for s in files}
    if stats is not None:
        for sid, info in sorted(stats.sessions.items()):
            if sid not in out:
                out[sid] = server_only_session(captures_dir, sid, info)
    return out


def server_fps(stats: ServerStats | None, now: float) -> tuple[int, ...] | None:
    """The server's `recent_fps` as per-second counts for the last FPS_WINDOW seconds."""
    if stats is None or not stats.recent_fps:
        return None
    counts: dict[int, int] = {}
    for second, frames in stats.recent_fps:
        counts[second] = counts.get(second, 0) + frames
    top = max(counts)
    if 0 <= int(now) - top < FPS_WINDOW:
        top = int(now)  # quiet seconds since the last frame show as gaps
    return tuple(counts.get(t, 0) for t in range(top - FPS_WINDOW + 1, top + 1))
