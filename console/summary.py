"""`trainledger runs`: the rows of the run list, for scripts and CI (console/cli_runs.py prints them).

It reads the same files the console reads, through the same engines, so what a
script prints and what the Curves pane shows cannot disagree.
"""

from __future__ import annotations

import math
from typing import Any

from trainledger.engines.metrics.analysis import summarize
from trainledger.engines.metrics.series import RunSeries
from trainledger.engines.workspace import Workspace, list_runs


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
