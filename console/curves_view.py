"""What the Curves pane draws, computed from snapshots without touching a widget.

Keeping this pure means the chart's content (which runs, which points, the best
marker, the legend's claims) is tested without a terminal, and the pane itself is
only wiring: keys in, chart and legend out.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

from rich.text import Text

from trainledger.console.widgets.chart import ChartMarker, ChartSeries
from trainledger.console.widgets.chart_render import BASELINE_BEST_GLYPH, BEST_GLYPH
from trainledger.console.widgets.runlist import short_label
from trainledger.engines.metrics.analysis import MetricSummary
from trainledger.engines.metrics.series import SeriesSnapshot
from trainledger.engines.metrics.view import MetricView, metric_view, x_of_step
from trainledger.engines.safetext import clean
from trainledger.engines.workspace import RunInfo

XAxis = Literal["step", "epoch", "time"]
X_AXES: tuple[XAxis, ...] = ("step", "epoch", "time")  # the order `x` cycles through
SMOOTHING = (0.0, 0.6, 0.9, 0.99)
EVENT_GLYPHS = {"best": "◆", "phase": "▲", "early_stop": "■", "resumed": "•"}
OTHER_EVENT_GLYPH = "•"  # any other event kind
MISSING_NAMED = 8  # runs without the metric named under the chart; the rest are counted


@dataclass
class CurvesState:
    """The user's choices in the Curves pane (what the keys change)."""

    metric: str | None = None
    metric_chosen: bool = False  # False: the metric follows the cursor run's primary metric
    metric_filter: str = ""
    log_y: bool = False
    smoothing: float = 0.0
    x_axis: XAxis = "step"
    show_events: bool = True
    selected: set[str] = field(default_factory=set)
    pinned: str | None = None


def compile_filter(pattern: str) -> re.Pattern[str] | None:
    """Compile a metric filter; raises ValueError with a readable reason."""
    if not pattern:
        return None
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None


def metric_names(snapshots: Sequence[SeriesSnapshot], pattern: str = "") -> list[str]:
    """The union of the runs' metric names, filtered by a regex (search, case-insensitive)."""
    rx = compile_filter(pattern)
    names: set[str] = set()
    for snap in snapshots:
        names.update(snap.metric_names())
    return sorted(n for n in names if rx is None or rx.search(n))


def default_metric(names: Sequence[str], info: RunInfo | None) -> str | None:
    if not names:
        return None
    if info and info.primary_metric in names:
        return info.primary_metric
    for prefix in ("val/loss", "val_loss", "loss", "train/loss"):
        if prefix in names:
            return prefix
    losses = [n for n in names if "loss" in n.lower()]
    return losses[0] if losses else names[0]


def plotted_run_ids(cursor: str | None, state: CurvesState, order: Sequence[str]) -> list[str]:
    """The pinned baseline first, then selected runs, then the cursor run (drawn last, on top)."""
    chosen: list[str] = []
    if state.pinned and state.pinned in order:
        chosen.append(state.pinned)
    chosen += [r for r in order if r in state.selected and r not in chosen]
    if cursor and cursor not in chosen:
        chosen.append(cursor)
    return chosen


@dataclass(frozen=True)
class ChartModel:
    series: list[ChartSeries]
    markers: list[ChartMarker]
    legend: list[Text]
    summaries: dict[str, MetricSummary]
    missing: list[str] = field(default_factory=list)  # plotted runs without this metric (labels)


ViewFn = Callable[[str, SeriesSnapshot, str], "MetricView | None"]


def build_chart(
    metric: str,
    run_ids: Sequence[str],
    snapshots: dict[str, SeriesSnapshot],
    infos: dict[str, RunInfo],
    state: CurvesState,
    styles: Sequence[Any],
    marker_styles: dict[str, Any],
    color_index: dict[str, int],
    view: ViewFn | None = None,
) -> ChartModel:
    """The chart's series, markers and legend. `view(run_id, snapshot, metric)` may serve
    memoised MetricViews; by default they are computed here."""
    if view is None:
        def view(run_id: str, snap: SeriesSnapshot, name: str) -> MetricView | None:
            info = infos.get(run_id)
            return metric_view(snap, name, state.x_axis, state.smoothing,
                               info.directions if info else None)

    series: list[ChartSeries] = []
    markers: list[ChartMarker] = []
    legend: list[Text] = []
    summaries: dict[str, MetricSummary] = {}
    missing: list[str] = []
    glyphs: dict[str, list[str]] = {}  # what the chart's glyphs mean, in order of appearance
    for run_id in run_ids:
        snap = snapshots.get(run_id)
        info = infos.get(run_id)
        if snap is None:
            continue
        label = short_label(clean(info.label if info else run_id), 24)  # a name is data
        mv = view(run_id, snap, metric)
        if mv is None:
            missing.append(label)  # listed under the chart, not silently dropped
            continue
        style = styles[color_index.get(run_id, 0) % len(styles)]
        if mv.summary is not None:
            summaries[run_id] = mv.summary
        best_glyph = BEST_GLYPH
        if run_id == state.pinned:
            label += " (baseline)"
            best_glyph = BASELINE_BEST_GLYPH
        series.append(ChartSeries(label=label, x=mv.x, y=mv.y, style=style, best=mv.best_xy,
                                  best_glyph=best_glyph))
        if mv.best_xy is not None:
            _note(glyphs, best_glyph, "baseline best" if best_glyph == BASELINE_BEST_GLYPH else "best")
        legend.append(_legend_line(label, style, mv.summary))
        if state.show_events:
            for ev in snap.events:
                ex = x_of_step(snap, ev.step, state.x_axis)
                if ex is None:
                    continue
                kind = ev.kind if ev.kind in EVENT_GLYPHS else "other"
                glyph = EVENT_GLYPHS.get(ev.kind, OTHER_EVENT_GLYPH)
                _note(glyphs, glyph, clean(ev.kind).replace("_", " ") or "event")
                markers.append(
                    ChartMarker(
                        x=ex,
                        glyph=glyph,
                        style=marker_styles.get(kind, marker_styles.get("other", "")),
                        label=clean(ev.message or ev.kind),
                    )
                )
    head: list[Text] = []
    if missing:
        names = ", ".join(missing[:MISSING_NAMED])
        more = f" and {len(missing) - MISSING_NAMED:,} more" if len(missing) > MISSING_NAMED else ""
        head.append(Text(f"no {clean(metric)}: {names}{more}", style="italic"))
    if glyphs:
        head.append(_glyph_key(glyphs))
    return ChartModel(series, markers, head + legend, summaries, missing)


def _note(glyphs: dict[str, list[str]], glyph: str, meaning: str) -> None:
    seen = glyphs.setdefault(glyph, [])
    if meaning not in seen and len(seen) < 3:
        seen.append(meaning)


def _glyph_key(glyphs: dict[str, list[str]]) -> Text:
    """`◆ best  ◇ baseline best  ▲ phase  • resumed`: what the chart's glyphs stand for."""
    t = Text(style="dim")
    for i, (glyph, meanings) in enumerate(glyphs.items()):
        if i:
            t.append("  ")
        t.append(f"{glyph} {'/'.join(meanings)}")
    return t


def fmt(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    a = abs(v)
    if a != 0 and (a < 1e-3 or a >= 1e6):
        return f"{v:.3e}"
    return f"{v:.4g}"


def _at(step: float | None, epoch: float | None) -> str:
    """Where a value was seen, in one word so the legend wraps between claims."""
    if epoch is not None and math.isfinite(epoch):
        return f"ep{epoch:g}"
    return f"step{fmt(step)}"


def _legend_line(label: str, style: str, s: MetricSummary | None) -> Text:
    t = Text()
    t.append("■ ", style=style)
    t.append(label, style="bold")
    if s is None:
        return t
    t.append(f"  last {fmt(s.last)} {_at(s.last_step, s.last_epoch)}")
    if s.best is not None:
        t.append(f"  best {fmt(s.best)} {_at(s.best_step, s.best_epoch)}")
        if not s.best_is_last:
            t.append("  ")
            t.append("best≠last", style="bold reverse")
    return t
