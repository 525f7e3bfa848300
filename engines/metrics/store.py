"""A run's columns in memory: full-length where a metric is common, (row, value) pairs where rare.

`RunSeries` appends parsed blocks here while the UI thread draws from views of the
published prefix. Memory follows the values present, not rows x names: a metric on
fewer than a quarter of the rows (first seen late, or logged now and then) is kept as
pairs and becomes a column once it holds values on half of them; a run keeps at most
MAX_METRICS names and counts the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping

import numpy as np

from trainledger.engines.metrics.columns import Block, Sparse

MAX_METRICS = 10_000  # distinct metric names kept per run; more are counted, not stored
_MIN_CAPACITY = 1024


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


class SparseColumn:
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
class Columns:
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
    sparse: dict[str, SparseColumn] = field(default_factory=dict)
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
                self.sparse[name] = SparseColumn(idx, part[idx])
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
            self.step = fill_steps(block.step, -1.0)
            self.epoch, self.time = block.epoch, block.time
            keep = set(new)
            self.metrics = {name: c for name, c in block.metrics.items() if name in keep}
            self.sparse = {name: SparseColumn(*p) for name, p in block.sparse.items() if name in keep}
            self.counts = {}
            self.n = self.cap = k
            return
        if n + k > self.cap:
            self._grow(n + k)
        prev = self.step[n - 1] if n else -1.0
        self.step[n : n + k] = fill_steps(block.step, prev)
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
            self.sparse[name] = SparseColumn(pairs[0] + n, pairs[1])
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


def fill_steps(step: np.ndarray, prev: float) -> np.ndarray:
    """Rows without a finite step get the previous row's step + 1."""
    ok = np.isfinite(step)
    if ok.all():
        return step
    idx = np.arange(step.size)
    last = np.maximum.accumulate(np.where(ok, idx, -1))
    base = np.where(last >= 0, step[np.maximum(last, 0)], prev)
    return base + (idx - last).astype(np.float64) * ~ok
