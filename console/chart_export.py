"""The Curves chart as a CSV: every raw row of the metric and the value the chart draws for it.

`E` in the Curves pane writes this file (in a thread worker) so the chart can be opened
in a spreadsheet. Pure: snapshots in, text and a path out; no widget, no Textual.

Columns: run_id, name, metric, step, epoch, time, raw, drawn. One row per metrics.jsonl row
that holds the metric. `raw` is the logged value; `drawn` is what the chart plots for that
row on its current x axis (after the EMA smoothing; the chart then keeps the min and max of
each column, so no drawn value is lost) and is empty where the chart draws nothing (no x on
this axis, a non-finite value, a value <= 0 under log-y, a row outside the zoom).
`time` is the row's unix time in seconds, as logged. Numbers are written exactly (repr);
NaN is empty; infinities are `inf`/`-inf`. Text cells (names come from files) have control
characters replaced, and a leading `= + - @` is prefixed with `'` so no spreadsheet runs it
as a formula.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from trainledger.engines.metrics.downsample import ema
from trainledger.engines.metrics.export import text_cell
from trainledger.engines.metrics.series import SeriesSnapshot

COLUMNS = ("run_id", "name", "metric", "step", "epoch", "time", "raw", "drawn")
EXPORTS = "exports"  # the folder in the workspace


@dataclass(frozen=True)
class ExportRun:
    """One run's rows of one metric, ready to write (arrays of equal length)."""

    run_id: str
    name: str
    step: np.ndarray
    epoch: np.ndarray
    time: np.ndarray
    raw: np.ndarray
    drawn: np.ndarray  # NaN: not drawn


def _present(snapshot: SeriesSnapshot, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(row index, value) of the rows that hold `metric`."""
    metrics = snapshot.metrics
    present = getattr(metrics, "present", None)
    pairs = present(metric) if present is not None else None
    if pairs is not None:
        idx, y = pairs
        return np.asarray(idx, dtype=np.int64), np.asarray(y, dtype=np.float64)
    col = np.asarray(metrics[metric], dtype=np.float64)
    idx = np.flatnonzero(~np.isnan(col))
    return idx, col[idx]


def export_run(
    snapshot: SeriesSnapshot,
    metric: str,
    name: str,
    *,
    x_axis: str = "step",
    smoothing: float = 0.0,
    log_y: bool = False,
    zoom: tuple[float, float] | None = None,
) -> ExportRun:
    """The rows of `metric` in one run, with the chart's drawn value beside each raw one.

    `drawn` follows metric_view: the points with a finite x on `x_axis` and a finite value,
    smoothed by the same EMA, so it equals what the chart's series holds.
    """
    if metric not in snapshot.metrics:
        empty = np.empty(0)
        return ExportRun(snapshot.run_id, name, empty, empty, empty, empty, empty)
    idx, raw = _present(snapshot, metric)
    step, epoch, times = snapshot.step[idx], snapshot.epoch[idx], snapshot.time[idx]
    if x_axis == "step":
        xs = step
    elif x_axis == "epoch":
        xs = epoch
    else:
        finite_t = np.flatnonzero(np.isfinite(snapshot.time))
        start = snapshot.time[finite_t[0]] if len(finite_t) else math.nan
        xs = times - start
    keep = np.isfinite(xs) & np.isfinite(raw)
    drawn = np.full(len(raw), np.nan)
    shown = raw[keep]
    if smoothing > 0 and len(shown):
        shown = ema(shown, smoothing)
    drawn[keep] = shown
    if log_y:
        drawn[~(drawn > 0)] = np.nan
    if zoom is not None:
        lo, hi = sorted(zoom)
        drawn[~((xs >= lo) & (xs <= hi))] = np.nan
    return ExportRun(snapshot.run_id, name, step, epoch, times, raw, drawn)


def _cell_num(value: float) -> str:
    v = float(value)
    if math.isnan(v):
        return ""
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 2**53:
        return str(int(v))
    return repr(v)


def chart_csv(metric: str, runs: Sequence[ExportRun]) -> str:
    """The CSV text (header row first, `\\r\\n` line ends as RFC 4180 says)."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    m = text_cell(metric)
    for run in runs:
        rid, name = text_cell(run.run_id), text_cell(run.name)
        cols = [np.asarray(c, dtype=np.float64).tolist()
                for c in (run.step, run.epoch, run.time, run.raw, run.drawn)]
        for step, epoch, t, raw, drawn in zip(*cols):
            writer.writerow((rid, name, m, _cell_num(step), _cell_num(epoch), _cell_num(t),
                             _cell_num(raw), _cell_num(drawn)))
    return out.getvalue()


def safe_filename(name: str, limit: int = 80) -> str:
    """A metric name as a file name part: letters, digits, `. _ -`; never empty or hidden."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:limit]
    return text or "metric"


def export_path(root: Path, metric: str, now: float | None = None) -> Path:
    """`<root>/exports/<metric>-<UTC yyyymmddTHHMMSSZ>.csv`, a free name (`-2`, `-3` on a clash)."""
    stamp = _time.strftime("%Y%m%dT%H%M%SZ", _time.gmtime(_time.time() if now is None else now))
    folder = root / EXPORTS
    base = f"{safe_filename(metric)}-{stamp}"
    path = folder / f"{base}.csv"
    k = 2
    while path.exists():
        path = folder / f"{base}-{k}.csv"
        k += 1
    return path


def write_export(root: Path, metric: str, runs: Sequence[ExportRun], now: float | None = None) -> tuple[Path, int]:
    """Write the CSV atomically (a temporary file, then a rename); (its path, data rows)."""
    text = chart_csv(metric, runs)
    path = export_path(root, metric, now)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path, sum(len(r.raw) for r in runs)
