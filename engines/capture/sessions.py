"""The read side of the session store: what every `san-training/*.jsonl` holds, incrementally.

The capture server appends accepted frames; people also drop files copied off a phone into
the folder. `SessionScanner.scan()` reads only the bytes appended since its last call
(through `metrics.tail.TailReader`, which notices truncation, replacement and deletion),
checks every line with `schema.decode_frame` -- the decoder the server uses, so a dropped
file gets the server's reasons -- and returns an immutable `CaptureSnapshot` that a UI can
render without touching the disk.

Memory per session stays bounded however long the file: counts, a dict of reasons, the
first few rejected line numbers, per-second frame counts for the newest 120 s of the
frames' own `ts` clock, and a fixed log-spaced histogram of `latency_us` (100 bins per
decade from 1 us to 1e8 us, so a percentile is within ~1.2 % of the true value; it is
clamped to the exact min and max seen).
"""

from __future__ import annotations

import os
import stat as stat_mod
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainledger.engines.capture.schema import Frame, FrameError, decode_frame, to_dict
from trainledger.engines.metrics.tail import TailReader
from trainledger.engines.workspace import InvalidId, validate_id

FPS_WINDOW = 120  # seconds of per-second frame counts kept (frames' own ts clock)
FIRST_REJECTS = 10  # rejected line numbers remembered per session
CHUNK = 8 << 20  # bytes read per step; a cancel is honoured between steps
_BINS_PER_DECADE = 100
_DECADES = 8
_EDGES = 10.0 ** (
    np.arange(_BINS_PER_DECADE * _DECADES + 1) / _BINS_PER_DECADE
)  # 1 .. 1e8 us
_MIDS = np.concatenate(([0.0], np.sqrt(_EDGES[:-1] * _EDGES[1:]), [_EDGES[-1]]))


@dataclass(frozen=True)
class SessionSummary:
    """One session file as of the last scan. `version` grows whenever anything in it changed."""

    id: str
    path: Path
    valid_id: bool
    invalid_reason: str | None
    size: int
    mtime: float
    frames: int
    rejected: int
    reasons: dict[str, int]
    first_rejects: tuple[tuple[int, str], ...]  # (line number, reason), oldest first
    first_ts: float | None
    last_ts: float | None
    fps: tuple[
        int, ...
    ]  # frames per ts-second, the newest FPS_WINDOW seconds, oldest first
    latency: tuple[float, float, float] | None  # latency_us p50, p95, p99
    latency_range: tuple[float, float] | None  # exact min and max latency_us
    newest: dict[str, Any] | None  # the newest good frame
    pending_bytes: int  # a last line still waiting for its newline
    version: int

    @property
    def lines(self) -> int:
        return self.frames + self.rejected


@dataclass(frozen=True)
class CaptureSnapshot:
    sessions: tuple[SessionSummary, ...]  # sorted by id
    folder_exists: bool
    bytes_read: int  # read by this scan
    complete: bool  # False if the scan was cancelled part way

    def get(self, session_id: str) -> SessionSummary | None:
        for s in self.sessions:
            if s.id == session_id:
                return s
        return None


@dataclass
class _Session:
    """Mutable per-file state, only touched by the scanning thread."""

    id: str
    path: Path
    invalid_reason: str | None
    reader: TailReader
    line_no: int = 0
    frames: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    first_rejects: list[tuple[int, str]] = field(default_factory=list)
    first_ts: float | None = None
    last_ts: float | None = None
    per_second: Counter[int] = field(default_factory=Counter)
    hist: np.ndarray = field(
        default_factory=lambda: np.zeros(len(_MIDS), dtype=np.int64)
    )
    lat_min: float = float("inf")
    lat_max: float = float("-inf")
    newest: Frame | None = None
    size: int = 0
    mtime: float = 0.0
    version: int = 0
    summary: SessionSummary | None = None

    def clear(self) -> None:
        self.line_no = self.frames = self.rejected = 0
        self.reasons.clear()
        self.first_rejects.clear()
        self.first_ts = self.last_ts = None
        self.per_second.clear()
        self.hist[:] = 0
        self.lat_min, self.lat_max = float("inf"), float("-inf")
        self.newest = None

    def ingest(self, data: bytes) -> None:
        latencies: list[float] = []
        seconds: list[int] = []
        ts_min, ts_max = self.first_ts, self.last_ts
        newest = None
        for raw in data.split(b"\n")[:-1]:  # data ends with b"\n"
            self.line_no += 1
            line = raw.strip()
            if not line:
                continue  # the server skips blank lines too
            try:
                frame = decode_frame(line)
            except FrameError as exc:
                self.rejected += 1
                self.reasons[exc.kind] += 1  # by kind: no positions, no client's names
                if len(self.first_rejects) < FIRST_REJECTS:
                    self.first_rejects.append((self.line_no, exc.reason))
                continue
            self.frames += 1
            newest = frame
            latencies.append(frame.latency_us)
            seconds.append(int(frame.ts // 1))
            ts_min = frame.ts if ts_min is None or frame.ts < ts_min else ts_min
            ts_max = frame.ts if ts_max is None or frame.ts > ts_max else ts_max
        if newest is not None:
            self.newest = newest
        self.first_ts, self.last_ts = ts_min, ts_max
        if latencies:
            lat = np.asarray(latencies, dtype=np.float64)
            self.lat_min = min(self.lat_min, float(lat.min()))
            self.lat_max = max(self.lat_max, float(lat.max()))
            idx = np.searchsorted(
                _EDGES, lat, side="right"
            )  # 0: below 1 us; len: at/over 1e8
            self.hist += np.bincount(idx, minlength=len(_MIDS))[: len(_MIDS)]
        if seconds and ts_max is not None:
            floor = int(ts_max // 1) - FPS_WINDOW
            self.per_second.update(s for s in seconds if s > floor)
            for s in [s for s in self.per_second if s <= floor]:
                del self.per_second[s]

    def percentiles(self) -> tuple[float, float, float] | None:
        total = int(self.hist.sum())
        if total == 0:
            return None
        cum = np.cumsum(self.hist)
        out = []
        for q in (0.50, 0.95, 0.99):
            i = int(np.searchsorted(cum, q * total, side="left"))
            out.append(float(min(max(_MIDS[i], self.lat_min), self.lat_max)))
        return out[0], out[1], out[2]

    def summarise(self, pending: int) -> SessionSummary:
        if self.summary is not None and self.summary.version == self.version:
            return self.summary
        fps: tuple[int, ...] = ()
        if self.last_ts is not None:
            top = int(self.last_ts // 1)
            lo = max(
                top - FPS_WINDOW + 1,
                int(self.first_ts // 1) if self.first_ts is not None else top,
            )
            fps = tuple(self.per_second.get(s, 0) for s in range(lo, top + 1))
        self.summary = SessionSummary(
            id=self.id,
            path=self.path,
            valid_id=self.invalid_reason is None,
            invalid_reason=self.invalid_reason,
            size=self.size,
            mtime=self.mtime,
            frames=self.frames,
            rejected=self.rejected,
            reasons=dict(self.reasons.most_common()),
            first_rejects=tuple(self.first_rejects),
            first_ts=self.first_ts,
            last_ts=self.last_ts,
            fps=fps,
            latency=self.percentiles(),
            latency_range=(self.lat_min, self.lat_max) if self.frames else None,
            newest=to_dict(self.newest) if self.newest is not None else None,
            pending_bytes=pending,
            version=self.version,
        )
        return self.summary


class SessionScanner:
    """Incremental reader of every `*.jsonl` in `captures_dir`; call `scan()` from one thread."""

    def __init__(self, captures_dir: Path) -> None:
        self.captures_dir = Path(captures_dir)
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()  # scan() is not re-entrant; a second caller waits

    def scan(
        self, cancel: threading.Event | None = None, max_bytes: int | None = None
    ) -> CaptureSnapshot:
        """Read what was appended since the last scan; stop early on `cancel` or after about
        `max_bytes` (the snapshot then says complete=False and the next scan goes on)."""
        with self._lock:
            return self._scan(cancel, max_bytes)

    def _scan(
        self, cancel: threading.Event | None, max_bytes: int | None
    ) -> CaptureSnapshot:
        try:
            entries = sorted(
                (e for e in os.scandir(self.captures_dir)
                 if e.name.endswith(".jsonl") and not e.name.startswith(".")),
                key=lambda e: e.name,
            )  # fmt: skip
            exists = True
        except (FileNotFoundError, NotADirectoryError):
            entries, exists = [], False
        seen: set[str] = set()
        bytes_read = 0
        complete = True
        summaries = []
        for entry in entries:
            stem = entry.name[: -len(".jsonl")]
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # vanished between the listing and now
            if not stat_mod.S_ISREG(st.st_mode):
                continue  # symlinks, fifos and folders are not sessions
            sess = self._sessions.get(stem)
            if sess is None:
                sess = self._sessions[stem] = _Session(
                    stem, Path(entry.path), _invalid(stem), TailReader(Path(entry.path))
                )
            seen.add(stem)
            budget = None if max_bytes is None else max_bytes - bytes_read
            if (
                complete
                and not (cancel is not None and cancel.is_set())
                and (budget is None or budget > 0)
            ):
                got, finished = self._read(sess, cancel, budget)
                bytes_read += got
                complete = complete and finished
            else:
                complete = False
            if (sess.size, sess.mtime) != (st.st_size, st.st_mtime):
                sess.size, sess.mtime = st.st_size, st.st_mtime
                sess.version += 1
            summaries.append(sess.summarise(max(0, sess.size - sess.reader.offset)))
        for gone in set(self._sessions) - seen:
            del self._sessions[gone]
        return CaptureSnapshot(tuple(summaries), exists, bytes_read, complete)

    @staticmethod
    def _read(
        sess: _Session, cancel: threading.Event | None, budget: int | None
    ) -> tuple[int, bool]:
        total = 0
        while True:
            step = CHUNK if budget is None else max(1, min(CHUNK, budget - total))
            tail = sess.reader.poll(step)
            if tail.reset or tail.deleted:
                sess.clear()
                sess.version += 1
            if tail.data:
                sess.ingest(tail.data)
                sess.version += 1
                total += len(tail.data)
            if len(tail.data) < step // 2 or tail.missing:
                return total, True
            if (cancel is not None and cancel.is_set()) or (
                budget is not None and total >= budget
            ):
                return total, False


def _invalid(stem: str) -> str | None:
    try:
        validate_id(stem, "session id")
    except InvalidId as exc:
        return str(exc)
    return None
