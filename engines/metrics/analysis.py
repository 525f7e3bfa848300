"""Best/last summaries of metrics, and guessing whether a metric should go down or up.

The console marks the best point of each curve and says whether the latest value is
still the best; that needs a direction, which run.json may declare and which we
otherwise infer from the metric's name.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from trainledger.engines.metrics.series import SeriesSnapshot

Direction = Literal["min", "max"]

# Multi-word names are written with "_" (matched against the tokens joined by "_").
_NEUTRAL = ("lr", "learning_rate", "beta", "time", "throughput", "samples_per_s")
_MIN = (
    "loss", "error", "err", "mse", "mae", "rmse", "perplexity", "ppl", "nll", "kl",
    "cross_entropy", "crossentropy", "xent", "ce",
)
_MAX = (
    "acc", "accuracy", "cosine", "cos", "coverage", "f1", "auc", "precision", "recall",
    "iou", "map", "bleu", "rouge", "r2", "entropy", "active",
)
_TOKEN_RE = re.compile(r"[a-z0-9]+")
_PREFIX_OK = 4  # keywords this long also match as the start or end of a token ("valloss")


def _matches(tokens: list[str], keyword: str) -> bool:
    parts = keyword.split("_")
    k = len(parts)
    for i in range(len(tokens) - k + 1):
        if tokens[i : i + k] == parts:
            return True
    if k == 1 and len(keyword) >= _PREFIX_OK:
        return any(t.startswith(keyword) or t.endswith(keyword) for t in tokens)
    return False


def _component_direction(component: str) -> tuple[bool, Direction | None]:
    """(matched, direction) for one path component of a metric name."""
    tokens = _TOKEN_RE.findall(component.lower())
    if not tokens:
        return False, None
    if any(_matches(tokens, kw) for kw in _NEUTRAL):
        return True, None
    if any(_matches(tokens, kw) for kw in _MIN):
        return True, "min"
    if any(_matches(tokens, kw) for kw in _MAX):
        return True, "max"
    return False, None


def direction_for(name: str, declared: dict[str, str] | None = None) -> Direction | None:
    """"min", "max" or None (no best) for a metric; a declared direction wins.

    The name's last path component decides ("val/loss", "train_loss"); if it says
    nothing, earlier components are tried ("coverage/hash").
    """
    if declared and name in declared:
        d = declared[name]
        return d if d in ("min", "max") else None  # type: ignore[return-value]
    for component in reversed(name.split("/")):
        matched, direction = _component_direction(component)
        if matched:
            return direction
    return None


@dataclass(frozen=True)
class MetricSummary:
    name: str
    direction: Direction | None
    count: int  # finite points
    last: float
    last_step: float
    last_epoch: float | None
    best: float | None
    best_step: float | None
    best_epoch: float | None
    best_is_last: bool  # True when there is no best or it is at the last point
    min: float
    max: float


def _opt(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def summarize(
    snapshot: SeriesSnapshot, name: str, declared: dict[str, str] | None = None
) -> MetricSummary | None:
    """Last and best values of one metric; None if it has no finite point."""
    y = snapshot.metrics.get(name)
    if y is None:
        return None
    rows = np.flatnonzero(np.isfinite(y))
    if rows.size == 0:
        return None
    vals = y[rows]
    steps = snapshot.step[rows]
    last_row = int(rows[-1])
    direction = direction_for(name, declared)
    best = best_step = best_epoch = None
    best_is_last = True
    if direction is not None:
        best = float(vals.min() if direction == "min" else vals.max())
        tied = np.flatnonzero(vals == best)
        pick = tied[np.argmin(steps[tied])]  # earliest step wins; argmin keeps file order
        best_row = int(rows[pick])
        best_step = float(snapshot.step[best_row])
        best_epoch = _opt(float(snapshot.epoch[best_row]))
        best_is_last = best_row == last_row
    return MetricSummary(
        name=name,
        direction=direction,
        count=int(rows.size),
        last=float(y[last_row]),
        last_step=float(snapshot.step[last_row]),
        last_epoch=_opt(float(snapshot.epoch[last_row])),
        best=best,
        best_step=best_step,
        best_epoch=best_epoch,
        best_is_last=best_is_last,
        min=float(vals.min()),
        max=float(vals.max()),
    )


def summarize_all(
    snapshot: SeriesSnapshot, declared: dict[str, str] | None = None
) -> dict[str, MetricSummary]:
    """Summaries of every metric that has a finite point, by name (sorted)."""
    out: dict[str, MetricSummary] = {}
    for name in snapshot.metric_names():
        summary = summarize(snapshot, name, declared)
        if summary is not None:
            out[name] = summary
    return out
