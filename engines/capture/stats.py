"""The capture server's live counters: what `GET /stats` returns, kept as plain ints and dicts.

Kept apart from the server so the per-request path reads as one function, and so the
counters' shape (docs/formats.md, "GET /stats") lives in one place.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

FPS_WINDOW = 120  # seconds of per-second accepted-frame counts kept for `recent_fps`
MAX_KINDS = 200  # distinct reject kinds counted one by one; past that they count as OTHER
MAX_SESSION_KINDS = 20  # the same, per session (a session's own reasons in the Capture pane)
OTHER = "other"


@dataclass
class Stats:
    """Live counters, plain ints and dicts; `/stats` serialises them as they are."""

    host: str = ""
    port: int = 0
    fsync: str = "batch"
    started_at: float = field(default_factory=time.time)
    requests: int = 0
    bad_requests: dict[str, int] = field(default_factory=dict)
    frames_accepted: int = 0
    frames_rejected: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    bytes_in: int = 0
    # per session: accepted, rejected, last_at, rejects_by_reason (its own kinds, capped too)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    fps: deque[list[int]] = field(default_factory=deque)

    def bad(self, status: int) -> None:
        key = str(status)
        self.bad_requests[key] = self.bad_requests.get(key, 0) + 1

    def count_frames(
        self, session: str, accepted: int, rejected: int, by_kind: dict[str, int], now: float
    ) -> None:
        """Count one request; `by_kind` is its rejects per kind (`FrameError.kind`)."""
        self.frames_accepted += accepted
        self.frames_rejected += rejected
        _add_kinds(self.rejects_by_reason, by_kind, MAX_KINDS)
        s = self.sessions.get(session)
        if s is None:
            s = self.sessions[session] = {"accepted": 0, "rejected": 0, "last_at": now,
                                          "rejects_by_reason": {}}  # fmt: skip
        s["accepted"] += accepted
        s["rejected"] += rejected
        s["last_at"] = now
        if by_kind:
            _add_kinds(s["rejects_by_reason"], by_kind, MAX_SESSION_KINDS)
        if accepted:
            sec = int(now)
            fps = self.fps
            if fps and fps[-1][0] == sec:
                fps[-1][1] += accepted
            else:
                fps.append([sec, accepted])
                while fps[0][0] <= sec - FPS_WINDOW:
                    fps.popleft()

    def as_dict(self) -> dict[str, Any]:
        now = time.time()
        cutoff = int(now) - FPS_WINDOW
        return {
            "version": 1,
            "started_at": self.started_at,
            "uptime_s": now - self.started_at,
            "host": self.host,
            "port": self.port,
            "fsync": self.fsync,
            "requests": self.requests,
            "bad_requests": self.bad_requests,
            "frames_accepted": self.frames_accepted,
            "frames_rejected": self.frames_rejected,
            "rejects_by_reason": self.rejects_by_reason,
            "bytes_in": self.bytes_in,
            "sessions": self.sessions,
            "recent_fps": [p for p in self.fps if p[0] > cutoff],
        }


def _add_kinds(counts: dict[str, int], by_kind: dict[str, int], cap: int) -> None:
    for kind, n in by_kind.items():
        if kind not in counts and len(counts) >= cap:
            kind = OTHER
        counts[kind] = counts.get(kind, 0) + n
