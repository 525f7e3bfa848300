"""One run's metrics and events as growing columns, refreshed from its run folder.

The console polls a run while it trains; `RunSeries.refresh` reads only the bytes
appended since the last call and `snapshot` hands out immutable views that the UI
thread can draw while another thread refreshes.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import msgspec
import numpy as np

from trainledger.engines.metrics import cache as _cache
from trainledger.engines.metrics.columns import MAX_LINE_BYTES, Block, Sparse, parse_lines
from trainledger.engines.metrics.tail import TailReader
from trainledger.engines.safeio import NotRegularFile, open_regular_file
from trainledger.engines.workspace import EVENTS_FILE, METRICS_FILE

CACHE_MIN_ROWS = 100_000  # write the cache after a refresh that parsed this many rows...
CACHE_MIN_FRACTION = 0.2  # ...and at least this share of the total
_MIN_CAPACITY = 1024
_COUNT_LINES_MAX = 1 << 22  # bigger reads leave the line count to be made if needed
_LINE_RE = re.compile(r"^line (\d+):")
MAX_METRICS = 10_000  # distinct metric names kept per run; more are counted, not stored
_generic = msgspec.json.Decoder()


@dataclass(frozen=True)
class Event:
    kind: str
    step: float
    epoch: float | None
    time: float | None
    message: str
    fields: dict[str, Any]


class MetricMap(Mapping[str, np.ndarray]):
    """A snapshot's metrics by name, each a read-only length-n column (NaN = absent).

    Dense metrics are views of the series' columns. A sparse one (a metric on few rows)
    is held as (row index, value) pairs and made into a column only when asked for, so
    memory follows the values present; `present(name)` gives the pairs without that.
    """

    def __init__(self, n: int, dense: dict[str, np.ndarray], sparse: dict[str, Sparse]) -> None:
        self._n = n
        self._dense = dense
        self._sparse = sparse
        self._made: dict[str, np.ndarray] = {}  # the last few sparse columns asked for

    def __getitem__(self, name: str) -> np.ndarray:
        col = self._dense.get(name)
        if col is not None:
            return col
        made = self._made.get(name)
        if made is not None:
            return made
        idx, vals = self._sparse[name]
        out = np.full(self._n, np.nan)
        out[idx] = vals
        out.flags.writeable = False
        if len(self._made) >= 4:
            self._made.pop(next(iter(self._made)))
        self._made[name] = out
        return out

    def __contains__(self, name: object) -> bool:
        return name in self._dense or name in self._sparse

    def __iter__(self) -> Iterator[str]:
        yield from self._dense
        yield from self._sparse

    def __len__(self) -> int:
        return len(self._dense) + len(self._sparse)

    def present(self, name: str) -> Sparse | None:
        """(row index, value) of the rows that hold `name`, without a full-length column."""
        if name in self._sparse:
            return self._sparse[name]
        col = self._dense.get(name)
        if col is None:
            return None
        idx = np.flatnonzero(~np.isnan(col))
        return idx, col[idx]

    def is_sparse(self, name: str) -> bool:
        return name in self._sparse

    def dense(self) -> dict[str, np.ndarray]:
        return dict(self._dense)

    def sparse(self) -> dict[str, Sparse]:
        return dict(self._sparse)


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


class _SparseCol:
    """A metric on few rows: growable (row index, value) arrays; [0, count) is published."""

    def __init__(self, idx: np.ndarray, vals: np.ndarray) -> None:
        self.count = int(idx.size)
        cap = max(16, self.count)
        self.idx = np.empty(cap, dtype=np.int64)
        self.vals = np.empty(cap)
        self.idx[: self.count] = idx
        self.vals[: self.count] = vals

    def extend(self, idx: np.ndarray, vals: np.ndarray) -> None:
        k = int(idx.size)
        if not k:
            return
        need = self.count + k
        if need > self.idx.size:  # new arrays: views already handed out stay valid
            cap = max(need, 2 * self.idx.size)
            idx_new, vals_new = np.empty(cap, dtype=np.int64), np.empty(cap)
            idx_new[: self.count] = self.idx[: self.count]
            vals_new[: self.count] = self.vals[: self.count]
            self.idx, self.vals = idx_new, vals_new
        self.idx[self.count : need] = idx
        self.vals[self.count : need] = vals
        self.count = need

    def views(self) -> Sparse:
        return _ro(self.idx[: self.count]), _ro(self.vals[: self.count])


def _present(part: np.ndarray) -> int:
    return int(part.size - np.count_nonzero(np.isnan(part)))


@dataclass
class _Columns:
    """Growable float64 columns; [0, n) is never written once published.

    A metric present on at least a quarter of the rows has a full-length column; one on
    fewer (first seen late, or on few rows) is kept as (row, value) pairs, and moves to
    a column once it holds values on half the rows. At most MAX_METRICS names are kept.
    """

    n: int = 0
    cap: int = 0
    step: np.ndarray = field(default_factory=lambda: np.empty(0))
    epoch: np.ndarray = field(default_factory=lambda: np.empty(0))
    time: np.ndarray = field(default_factory=lambda: np.empty(0))
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    sparse: dict[str, _SparseCol] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # values present per dense metric
    ignored: set[str] = field(default_factory=set)  # names past MAX_METRICS

    def names(self) -> list[str]:
        return [*self.metrics, *self.sparse]

    def _grow(self, need: int) -> None:
        cap = max(need, 2 * self.cap, _MIN_CAPACITY)

        def moved(old: np.ndarray) -> np.ndarray:
            new = np.empty(cap)
            new[: self.n] = old[: self.n]
            return new

        self.step, self.epoch, self.time = moved(self.step), moved(self.epoch), moved(self.time)
        metrics = {}
        for name, col in self.metrics.items():
            count = self.counts.get(name)
            if count is None:
                count = self.counts[name] = _present(col[: self.n])
            if self.n >= 1024 and 8 * count < self.n:  # become rare: pairs, not a column
                part = col[: self.n]
                idx = np.flatnonzero(~np.isnan(part))
                self.sparse[name] = _SparseCol(idx, part[idx])
                self.counts.pop(name, None)
            else:
                metrics[name] = moved(col)
        self.metrics = metrics
        self.cap = cap

    def _admit(self, names: list[str]) -> list[str]:
        """The block's new names that fit under MAX_METRICS; the rest are counted."""
        room = MAX_METRICS - len(self.metrics) - len(self.sparse)
        new = [k for k in names if k not in self.metrics and k not in self.sparse]
        if len(new) > room:
            self.ignored.update(new[max(0, room):])
            new = new[: max(0, room)]
        return new

    def append(self, block: Block) -> None:
        k = block.n
        if k == 0:
            return
        n = self.n
        new = self._admit(block.names())
        if n == 0 and self.cap == 0:  # adopt the parsed arrays: no copy
            self.step = _fill_steps(block.step, -1.0)
            self.epoch, self.time = block.epoch, block.time
            keep = set(new)
            self.metrics = {name: c for name, c in block.metrics.items() if name in keep}
            self.sparse = {name: _SparseCol(*p) for name, p in block.sparse.items() if name in keep}
            self.counts = {}
            self.n = self.cap = k
            return
        if n + k > self.cap:
            self._grow(n + k)
        prev = self.step[n - 1] if n else -1.0
        self.step[n : n + k] = _fill_steps(block.step, prev)
        self.epoch[n : n + k] = block.epoch
        self.time[n : n + k] = block.time
        for name, col in self.metrics.items():
            part = block.metrics.get(name)
            if part is not None:
                col[n : n + k] = part
            else:
                col[n : n + k] = np.nan
                pairs = block.sparse.get(name)
                if pairs is not None:
                    col[n + pairs[0]] = pairs[1]
            if name in self.counts:
                self.counts[name] += _present(col[n : n + k])
        for name, sp in self.sparse.items():
            pairs = _block_pairs(block, name)
            if pairs is not None:
                sp.extend(pairs[0] + n, pairs[1])
        for name in new:
            pairs = _block_pairs(block, name)
            assert pairs is not None
            self.sparse[name] = _SparseCol(pairs[0] + n, pairs[1])
        self.n = n + k
        for name in [m for m, sp in self.sparse.items() if 2 * sp.count >= self.n]:
            self._densify(name)

    def _densify(self, name: str) -> None:
        sp = self.sparse.pop(name)
        col = np.full(self.cap, np.nan)
        col[sp.idx[: sp.count]] = sp.vals[: sp.count]
        self.metrics[name] = col
        self.counts[name] = sp.count

    def views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, MetricMap]:
        n = self.n
        return (
            _ro(self.step[:n]),
            _ro(self.epoch[:n]),
            _ro(self.time[:n]),
            MetricMap(n, {k: _ro(v[:n]) for k, v in self.metrics.items()},
                      {k: v.views() for k, v in self.sparse.items()}),
        )


def _block_pairs(block: Block, name: str) -> Sparse | None:
    pairs = block.sparse.get(name)
    if pairs is not None:
        return pairs
    col = block.metrics.get(name)
    if col is None:
        return None
    idx = np.flatnonzero(~np.isnan(col))
    return idx, col[idx]


def _ro(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


def _fill_steps(step: np.ndarray, prev: float) -> np.ndarray:
    """Rows without a finite step get the previous row's step + 1."""
    ok = np.isfinite(step)
    if ok.all():
        return step
    idx = np.arange(step.size)
    last = np.maximum.accumulate(np.where(ok, idx, -1))
    base = np.where(last >= 0, step[np.maximum(last, 0)], prev)
    return base + (idx - last).astype(np.float64) * ~ok


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
        self._cols = _Columns()
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
            self._cols = _Columns()
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
        self._cols = _Columns(
            n=loaded.n,
            cap=loaded.capacity,
            step=loaded.step,
            epoch=loaded.epoch,
            time=loaded.time,
            metrics=loaded.metrics,
            sparse={k: _SparseCol(i, v) for k, (i, v) in loaded.sparse.items()},
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

