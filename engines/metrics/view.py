"""One metric of one run, ready to draw: points on the chosen x axis, smoothing, best point.

This is the O(rows) work behind every chart update. It lives here, pure and headless,
so the console can do it in a worker thread and memoise it per snapshot version: the
UI thread then only downsamples and draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trainledger.engines.metrics.analysis import MetricSummary, summarize
from trainledger.engines.metrics.downsample import ema
from trainledger.engines.metrics.series import SeriesSnapshot

X_AXES = ("step", "epoch", "time")


@dataclass(frozen=True)
class MetricView:
    x: np.ndarray
    y: np.ndarray  # smoothed when smoothing > 0
    summary: MetricSummary | None  # of the raw values, whatever the smoothing
    best_xy: tuple[float, float] | None  # the best raw point on this x axis


def x_of_step(snapshot: SeriesSnapshot, step: float | None, x_axis: str) -> float | None:
    """Map a step to the chosen x axis through the first row that has that step."""
    if step is None:
        return None
    if x_axis == "step":
        return float(step)
    idx = np.flatnonzero(snapshot.step == step)
    if not len(idx):
        return None
    i = int(idx[0])
    if x_axis == "epoch":
        v = snapshot.epoch[i]
    else:
        finite = np.flatnonzero(np.isfinite(snapshot.time))
        v = snapshot.time[i] - snapshot.time[finite[0]] if len(finite) else math.nan
    return float(v) if math.isfinite(v) else None


def metric_view(
    snapshot: SeriesSnapshot,
    metric: str,
    x_axis: str = "step",
    smoothing: float = 0.0,
    declared: dict[str, str] | None = None,
) -> MetricView | None:
    """None when the run has no finite point of `metric` on this axis."""
    if metric not in snapshot.metrics:
        return None
    x, y = snapshot.xy(metric, x_axis)
    if not len(y):
        return None
    summary = summarize(snapshot, metric, declared)
    best_xy = None
    if summary is not None and summary.best is not None:
        bx = x_of_step(snapshot, summary.best_step, x_axis)
        if bx is not None:
            best_xy = (bx, summary.best)
    shown = ema(y, smoothing) if smoothing > 0 else y
    return MetricView(x=x, y=shown, summary=summary, best_xy=best_xy)
