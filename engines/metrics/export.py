"""Runs' metrics as CSV or JSON for spreadsheets and scripts (`trainledger runs export`, the
console's `E`).

The rows are the ones the chart draws: metrics.jsonl read by RunSeries, so a malformed line is
left out here exactly as the chart leaves it out. Two layouts (docs/formats.md, "Export"):

- wide: one row per (run, step), a column per metric: `run,step,epoch,time,<metric>...`.
  Rows of one run with the same step are merged (a metric logged twice at a step: the last).
- long: one row per value: `run,step,epoch,time,metric,value`.

Numbers are written with `repr` (the shortest text that reads back as the same float), steps
that are whole numbers as integers; an absent value is an empty cell (JSON: left out in wide,
never a row in long). Text cells (run ids, metric names) have control characters made visible,
and one that a spreadsheet would take for a formula (=, +, -, @ first) gets a leading `'`.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import numpy as np

from trainledger.engines.metrics.series import RunSeries, SeriesSnapshot
from trainledger.engines.safetext import clean
from trainledger.engines.workspace import Workspace, validate_id

FORMATS = ("csv", "json")
LAYOUTS = ("wide", "long")
BASE_COLUMNS = ("run", "step", "epoch", "time")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_C1 = re.compile("[\x7f-\x9f]")


def compile_metrics_regex(pattern: str | None) -> re.Pattern[str] | None:
    """The --metrics pattern (searched in each metric name), or ValueError naming the mistake."""
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"--metrics {pattern!r}: not a regular expression ({exc})") from None


def load_snapshot(ws: Workspace, run_id: str) -> SeriesSnapshot:
    run_dir = ws.run_dir(validate_id(run_id, "run id"))
    if not run_dir.is_dir():
        raise ValueError(f"no run {run_id} in {ws.root}")
    series = RunSeries(run_dir, cache_dir=ws.cache_dir, run_id=run_id)
    series.refresh()
    return series.snapshot()


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _step(v: float) -> int | float | None:
    if not math.isfinite(v):
        return None
    return int(v) if v.is_integer() and abs(v) < 2**53 else float(v)


def column_of(metric: str) -> str:
    """A metric's wide column: its name, unless it is one of the base columns (a metric "run")."""
    return f"{metric} (metric)" if metric in BASE_COLUMNS else metric


def _names(snap: SeriesSnapshot, rx: re.Pattern[str] | None) -> list[str]:
    return [m for m in snap.metric_names() if rx is None or rx.search(m)]


def wide_rows(run_id: str, snap: SeriesSnapshot, names: Sequence[str]) -> list[dict[str, Any]]:
    """One dict per distinct step of the run (first appearance order): run, step, epoch, time and
    every metric present at that step."""
    out: dict[Any, dict[str, Any]] = {}
    cols = {m: np.asarray(snap.metrics[m]) for m in names}
    for i in range(snap.n):
        step = _step(float(snap.step[i]))
        if step is None:  # no number as its step: the chart draws none of it, nor do we
            continue
        present = {column_of(m): v for m in names if (v := _num(cols[m][i])) is not None}
        if not present:
            continue
        row = out.get(step)
        if row is None:
            row = out[step] = {"run": run_id, "step": step, "epoch": None, "time": None}
        for key, arr in (("epoch", snap.epoch), ("time", snap.time)):
            v = _num(float(arr[i]))
            if v is not None:
                row[key] = v
        row.update(present)
    return list(out.values())


def long_rows(run_id: str, snap: SeriesSnapshot, names: Sequence[str]) -> list[dict[str, Any]]:
    """One dict per value, in row order then metric-name order."""
    cols = {m: np.asarray(snap.metrics[m]) for m in names}
    rows = []
    for i in range(snap.n):
        step, epoch, t = _step(float(snap.step[i])), _num(float(snap.epoch[i])), _num(float(snap.time[i]))
        if step is None:  # as wide_rows
            continue
        for m in names:
            v = _num(cols[m][i])
            if v is not None:
                rows.append({"run": run_id, "step": step, "epoch": epoch, "time": t, "metric": m, "value": v})
    return rows


def text_cell(s: str) -> str:
    """A text cell for a spreadsheet: controls made visible, a formula's first character
    (`= + - @`) behind a `'` so it is shown, not evaluated (the chart's CSV uses it too)."""
    s = clean(s)
    return "'" + s if s.startswith(_FORMULA) else s


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    return text_cell(str(v))


def to_csv(header: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([text_cell(h) for h in header])
    for r in rows:
        w.writerow([_cell(r.get(h)) for h in header])
    return buf.getvalue()


def to_json(rows: list[dict[str, Any]], drop_none: bool) -> str:
    if drop_none:
        rows = [{k: v for k, v in r.items() if v is not None or k in BASE_COLUMNS} for r in rows]
    text = msgspec.json.format(msgspec.json.encode(rows), indent=2).decode()
    # as `trainledger runs --json`: DEL and C1 escaped, so nothing in it is a terminal control
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def export_runs(
    ws: Workspace,
    run_ids: Sequence[str],
    metrics_regex: str | None = None,
    fmt: str = "csv",
    layout: str = "wide",
) -> str:
    """The metrics of `run_ids` (in that order) as CSV or JSON text, wide or long.

    ValueError for an unknown run, a bad regex, format or layout. Only metrics whose name
    matches `metrics_regex` (re.search) are exported; the wide header lists the union of the
    runs' metric names, sorted.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: use csv or json")
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}: use wide or long")
    rx = compile_metrics_regex(metrics_regex)
    snaps = [(rid, load_snapshot(ws, rid)) for rid in run_ids]
    rows: list[dict[str, Any]] = []
    all_names: set[str] = set()
    for rid, snap in snaps:
        names = _names(snap, rx)
        all_names.update(names)
        rows.extend(wide_rows(rid, snap, names) if layout == "wide" else long_rows(rid, snap, names))
    if fmt == "json":
        return to_json(rows, drop_none=layout == "wide")
    if layout == "wide":
        header = [*BASE_COLUMNS, *sorted(map(column_of, all_names))]
    else:
        header = [*BASE_COLUMNS, "metric", "value"]
    return to_csv(header, rows)
