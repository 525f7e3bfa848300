"""One run's metrics and events as growing columns, refreshed from its run folder.

The console refreshes a run when the watcher says its files changed (it does not poll);
`RunSeries.refresh` reads only the bytes appended since the last call, and `snapshot`
hands out immutable views that the UI thread can draw while another thread refreshes.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import msgspec
import numpy as np

from trainledger.engines.metrics import cache as _cache
from trainledger.engines.metrics.columns import MAX_LINE_BYTES, parse_lines
from trainledger.engines.metrics.store import MAX_METRICS, Columns, MetricMap, SparseColumn  # noqa: F401 - re-exported
from trainledger.engines.metrics.tail import TailReader
from trainledger.engines.safeio import NotRegularFile, open_regular_file
from trainledger.engines.workspace import EVENTS_FILE, METRICS_FILE

CACHE_MIN_ROWS = 100_000  # write the cache after a refresh that parsed this many rows...
CACHE_MIN_FRACTION = 0.2  # ...and at least this share of the total
_COUNT_LINES_MAX = 1 << 22  # bigger reads leave the line count to be made if needed
_LINE_RE = re.compile(r"^line (\d+):")
_generic = msgspec.json.Decoder()


@dataclass(frozen=True)
class Event:
    kind: str
    step: float
    epoch: float | None
    time: float | None
    message: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class SeriesSnapshot:
    """Read-only views of a run's columns at one moment."""

    run_id: str
    n: int
    step: np.ndarray
    epoch: np.ndarray
    time: np.ndarray
    metrics: Mapping[str, np.ndarray]  # len n each, NaN = absent in that row (a MetricMap)
    events: tuple[Event, ...]
    malformed: int  # skipped lines so far (metrics + events files)
    deleted: bool  # metrics.jsonl is gone
    version: int  # increments on every change
    malformed_examples: tuple[str, ...] = ()
    problem: str | None = None  # why a file cannot be read ("metrics.jsonl is a FIFO, ...")
    ignored_metrics: int = 0  # distinct names past MAX_METRICS, not stored

    def metric_names(self) -> list[str]:
        return sorted(self.metrics)

    def xy(self, metric: str, x: str = "step") -> tuple[np.ndarray, np.ndarray]:
        """Finite (x, y) points of `metric`; x is step, epoch or time (seconds since start)."""
        if x not in ("step", "epoch", "time"):
            raise ValueError(f"x must be step, epoch or time, not {x!r}")
        if metric not in self.metrics:
            return np.empty(0), np.empty(0)
        xs = getattr(self, x)
        if x == "time":
            finite_t = np.flatnonzero(np.isfinite(xs))
            if finite_t.size == 0:
                return np.empty(0), np.empty(0)
            xs = xs - xs[finite_t[0]]
        if isinstance(self.metrics, MetricMap) and self.metrics.is_sparse(metric):
            idx, y = self.metrics.present(metric)  # type: ignore[misc]  # few rows: no full column
            xs = xs[idx]
        else:
            y = self.metrics[metric]
        keep = np.isfinite(xs) & np.isfinite(y)
        return xs[keep], y[keep]


@dataclass(frozen=True)
class RefreshResult:
    new_rows: int  # rows parsed from metrics.jsonl by this call (not counting cached rows)
    reset: bool  # the file was truncated/replaced/rewritten: everything was dropped first
    deleted: bool  # metrics.jsonl is gone
    malformed: int  # malformed lines found by this call
    from_cache: bool  # this call loaded the columns from the cache
    cached_rows: int = 0  # rows loaded from the cache
    new_events: int = 0
    cancelled: bool = False  # stopped early by `cancel`; call again to read the rest


class RunSeries:
    """A run's metrics.jsonl and events.jsonl, read incrementally (optionally cached)."""

    def __init__(self, run_dir: Path, cache_dir: Path | None = None, run_id: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.run_id = run_id or self.run_dir.name
        self.metrics_path = self.run_dir / METRICS_FILE
        self.events_path = self.run_dir / EVENTS_FILE
        self._lock = threading.Lock()
        self._reader = TailReader(self.metrics_path)
        self._ev_reader = TailReader(self.events_path)
        self._cols = Columns()
        self._lines: int | None = 0  # lines consumed (for line numbers); None = not counted
        self._malformed = 0
        self._ev_malformed = 0
        self._examples: list[str] = []
        self._events: list[Event] = []
        self._deleted = False
        self._problems: dict[str, str] = {}  # file name -> why it cannot be read
        self._version = 0
        self._tried_cache = self.cache_dir is None
        self._snapshot = self._make_snapshot()

    def snapshot(self) -> SeriesSnapshot:
        """The latest published snapshot; never blocks on a refresh in progress."""
        return self._snapshot

    def refresh(self, cancel: threading.Event | None = None) -> RefreshResult:
        with self._lock:
            return self._refresh(cancel)

    # ------------------------------------------------------------------ internals
    def _refresh(self, cancel: threading.Event | None) -> RefreshResult:
        changed = False
        cached_rows = 0
        if not self._tried_cache:
            self._tried_cache = True
            cached_rows = self._load_cache()
            changed = cached_rows > 0

        tail = self._reader.poll()
        changed = self._note_problem(METRICS_FILE, tail.problem) or changed
        reset = tail.reset
        if reset:
            self._cols = Columns()
            self._lines = self._malformed = 0
            self._examples = []
            cached_rows = 0
            changed = True
        if tail.deleted != self._deleted and (tail.deleted or not tail.missing):
            self._deleted = tail.deleted
            changed = True

        first_line = (self._lines or 0) + 1
        block = parse_lines(tail.data, tuple(self._cols.metrics), cancel, first_line)
        if block.cancelled:
            self._reader.rewind(tail.start + block.consumed)
        if self._lines is None and block.malformed_examples:
            base = self._count_lines_before(tail.start)
            block.malformed_examples = [_renumber(e, base) for e in block.malformed_examples]
            self._lines = base
        if self._lines is not None:
            if block.consumed > _COUNT_LINES_MAX:  # counted only if ever needed
                self._lines = None
            else:
                self._lines += tail.data.count(b"\n", 0, block.consumed)
        self._cols.append(block)
        self._malformed += block.malformed
        self._examples = (self._examples + block.malformed_examples)[:5]
        malformed = block.malformed
        changed = changed or block.n > 0 or block.malformed > 0

        new_events, ev_bad, ev_changed = self._read_events()
        malformed += ev_bad
        changed = changed or ev_changed

        if changed:
            self._version += 1
            self._snapshot = self._make_snapshot()
        if (
            self.cache_dir is not None
            and block.n >= CACHE_MIN_ROWS
            and block.n >= CACHE_MIN_FRACTION * self._cols.n
        ):
            self._save_cache()
        return RefreshResult(
            new_rows=block.n,
            reset=reset,
            deleted=self._deleted,
            malformed=malformed,
            from_cache=cached_rows > 0,
            cached_rows=cached_rows,
            new_events=new_events,
            cancelled=block.cancelled,
        )

    def _note_problem(self, name: str, problem: str | None) -> bool:
        if self._problems.get(name) == problem:
            return False
        if problem is None:
            self._problems.pop(name, None)
        else:
            self._problems[name] = problem
        return True

    def _read_events(self) -> tuple[int, int, bool]:
        tail = self._ev_reader.poll()
        changed = self._note_problem(EVENTS_FILE, tail.problem)
        if tail.reset:
            changed = bool(self._events or self._ev_malformed)
            self._events = []
            self._ev_malformed = 0
        default_step = float(self._cols.step[self._cols.n - 1]) if self._cols.n else 0.0
        added = bad = 0
        for line in tail.data.splitlines():
            line = line.strip()
            if not line:
                continue
            event = _parse_event(line, default_step)
            if event is None:
                bad += 1
            else:
                self._events.append(event)
                added += 1
        self._ev_malformed += bad
        return added, bad, changed or added > 0 or bad > 0

    def _count_lines_before(self, offset: int) -> int:
        """Newlines in metrics.jsonl before `offset` (only to number malformed lines)."""
        count = 0
        try:
            with open_regular_file(self.metrics_path) as fh:
                left = offset
                while left > 0:
                    piece = fh.read(min(left, 1 << 24))
                    if not piece:
                        break
                    count += piece.count(b"\n")
                    left -= len(piece)
        except (OSError, NotRegularFile):
            pass
        return count

    def _make_snapshot(self) -> SeriesSnapshot:
        step, epoch, time_, metrics = self._cols.views()
        return SeriesSnapshot(
            run_id=self.run_id,
            n=self._cols.n,
            step=step,
            epoch=epoch,
            time=time_,
            metrics=metrics,
            events=tuple(self._events),
            malformed=self._malformed + self._ev_malformed,
            deleted=self._deleted,
            version=self._version,
            malformed_examples=tuple(self._examples),
            problem="; ".join(self._problems.values()) or None,
            ignored_metrics=len(self._cols.ignored),
        )

    def _load_cache(self) -> int:
        assert self.cache_dir is not None
        loaded = _cache.load_cache(self.cache_dir, self.run_id, self.metrics_path)
        if loaded is None:
            return 0
        ident = loaded.identity
        self._reader = TailReader(
            self.metrics_path,
            int(ident["offset"]),
            bytes.fromhex(ident["fingerprint"]),
            dev=int(ident["dev"]),
            ino=int(ident["ino"]),
        )
        self._cols = Columns(
            n=loaded.n,
            cap=loaded.capacity,
            step=loaded.step,
            epoch=loaded.epoch,
            time=loaded.time,
            metrics=loaded.metrics,
            sparse={k: SparseColumn(i, v) for k, (i, v) in loaded.sparse.items()},
        )
        self._lines = loaded.lines
        self._malformed = loaded.malformed
        self._examples = list(loaded.examples)
        return loaded.n

    def _save_cache(self) -> None:
        assert self.cache_dir is not None
        step, epoch, time_, metrics = self._cols.views()
        _cache.save_cache(
            self.cache_dir,
            self.run_id,
            identity=self._reader.identity(),
            step=step,
            epoch=epoch,
            time=time_,
            metrics=metrics.dense(),
            sparse=metrics.sparse(),
            malformed=self._malformed,
            lines=self._lines,
            examples=self._examples,
        )


def _renumber(example: str, base: int) -> str:
    return _LINE_RE.sub(lambda m: f"line {int(m.group(1)) + base}:", example, count=1)


def _num(v: Any) -> float | None:
    if type(v) is float or type(v) is int:
        f = float(v)
        return f if math.isfinite(f) else None
    return None


def _parse_event(line: bytes, default_step: float) -> Event | None:
    """One events.jsonl line as an Event, leniently; None if it is not a JSON object."""
    if len(line) > MAX_LINE_BYTES:
        return None
    try:
        obj = _generic.decode(line)
    except RecursionError:
        return None
    except msgspec.DecodeError:
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            return None
    if not isinstance(obj, dict):
        return None
    kind = obj.pop("kind", None)
    step = _num(obj.pop("step", None))
    epoch = _num(obj.pop("epoch", None))
    time_ = _num(obj.pop("time", None))
    message = obj.pop("message", None)
    return Event(
        kind=kind if isinstance(kind, str) else ("event" if kind is None else str(kind)),
        step=default_step if step is None else step,
        epoch=epoch,
        time=time_,
        message=message if isinstance(message, str) else ("" if message is None else str(message)),
        fields=obj,
    )

