"""`trainledger runs`: the run list as text or JSON, for scripts and CI.

It reads the same files the console reads, through the same engines, so what a
script prints and what the Curves pane shows cannot disagree.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any

import msgspec

from trainledger.engines.metrics.analysis import summarize
from trainledger.engines.metrics.series import MAX_METRICS, RunSeries
from trainledger.engines.safetext import clean
from trainledger.engines.workspace import Workspace, list_runs

_C1 = re.compile("[\x7f-\x9f]")


def _num(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def run_rows(ws: Workspace) -> list[dict[str, Any]]:
    rows = []
    for info in list_runs(ws):
        series = RunSeries(info.path, cache_dir=ws.cache_dir, run_id=info.id)
        series.refresh()
        snap = series.snapshot()
        metric = info.primary_metric
        if metric not in snap.metrics:
            losses = [m for m in snap.metric_names() if "loss" in m]
            metric = losses[0] if losses else (snap.metric_names() or [None])[0]
        summary = summarize(snap, metric, info.directions) if metric else None
        rows.append(
            {
                "id": info.id,
                "status": info.status,
                "model": info.model,
                "rows": snap.n,
                "malformed": snap.malformed,
                "metric": metric,
                "last": _num(summary.last) if summary else None,
                "last_step": _num(summary.last_step) if summary else None,
                "best": _num(summary.best) if summary else None,
                "best_step": _num(summary.best_step) if summary else None,
                "best_epoch": _num(summary.best_epoch) if summary else None,
                "best_is_last": summary.best_is_last if summary else None,
                "error": "; ".join(p for p in (info.error, info.problem, snap.problem) if p) or None,
                "ignored_metrics": snap.ignored_metrics,
            }
        )
    return rows


def print_runs(ws: Workspace, as_json: bool = False) -> int:
    rows = run_rows(ws)
    if as_json:
        text = msgspec.json.format(msgspec.json.encode(rows), indent=2).decode()
        # msgspec escapes C0 controls; DEL and C1 (a raw CSI is 0x9b) are escaped here, so
        # the JSON is still exact and nothing in it is a terminal control.
        sys.stdout.write(_C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")
        return 0
    if not rows:
        print(f"no runs in {clean(ws.runs_dir)}")
        return 0
    # Text from run folders is data: printed with its control characters made visible
    # (a run name holding ESC ] 2 ; ... BEL must not retitle the user's terminal).
    for r in rows:
        line = f"{clean(r['id'])}  {clean(r['status'])}  {r['rows']} rows"
        if r["metric"]:
            line += f"  {clean(r['metric'])}: last {r['last']:.4g}" if r["last"] is not None else ""
            if r["best"] is not None:
                at = f"epoch {r['best_epoch']:g}" if r["best_epoch"] is not None else f"step {r['best_step']:g}"
                line += f", best {r['best']:.4g} at {at}"
                if not r["best_is_last"]:
                    line += " (not the last)"
        if r["ignored_metrics"]:
            line += f"  (metric cap {MAX_METRICS:,} reached: {r['ignored_metrics']:,} names ignored)"
        if r["error"]:
            line += f"  [{clean(r['error'])}]"
        print(line)
    return 0
