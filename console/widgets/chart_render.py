"""Draw training curves as braille lines: pure arrays in, Rich lines out.

Terminal charts usually thin a long run by sampling, which hides the one spike that
matters (seed 002: a loss of 10.03 among values near 0.8). Here every braille dot
column keeps the min and max of its bucket, so a single outlier in a million points
is always drawn. Nothing here touches a terminal, so it is tested directly.

Layout, top to bottom: plot rows (y tick labels in a left gutter), one row of event
markers, the x axis line, the x tick labels. Several series share the axes; where
two series touch the same cell the cell's dots are merged and it takes the colour of
the series drawn last (so draw the run you care about last).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from rich.cells import cell_len
from rich.style import Style
from rich.text import Text

from trainledger.console.widgets.chart_axes import (
    _marker_line,
    _pow10,
    _safe_exponent,
    _unscale,
    _x_axis,
    _x_to_dot,
    _x_to_dots,
    _y_labels,
)
from trainledger.engines.metrics.downsample import minmax_buckets

MIN_WIDTH = 20
MIN_HEIGHT = 5
BEST_GLYPH = "◆"
BASELINE_BEST_GLYPH = "◇"  # the pinned baseline's best point: its own glyph, not "best"'s
CURSOR_GLYPH = "│"
_EXTRA_ROWS = 3  # marker row, axis line, tick labels
_BRAILLE = 0x2800
# Bit of each dot in a braille cell, indexed [dot row 0..3][dot column 0..1].
_DOT_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint8)


@dataclass(frozen=True)
class ChartSeries:
    """One curve. `x` and `y` are the raw points (finite values only), any length."""

    label: str
    x: np.ndarray
    y: np.ndarray
    style: str | Style  # a Rich style string or Style
    best: tuple[float, float] | None = None
    best_glyph: str = BEST_GLYPH


@dataclass(frozen=True)
class ChartMarker:
    """An event (phase change, early stop, best) drawn in the marker row at its x."""

    x: float
    glyph: str
    style: str | Style
    label: str


@dataclass(frozen=True)
class ChartResult:
    """What `render_chart` drew: `height` lines, each exactly `width` cells."""

    lines: list[Text]
    points_in: int
    points_drawn: int
    hidden_nonpositive: int
    # Geometry, for callers that map a column back to x (all zero when nothing was plotted).
    plot_left: int = 0
    plot_width: int = 0
    plot_height: int = 0
    x_range: tuple[float, float] | None = None
    y_range: tuple[float, float] | None = None  # real units, also under log_y
    cursor_col: int | None = None  # the plot column (0-based, after plot_left) of the cursor


def render_chart(
    series: Sequence[ChartSeries],
    width: int,
    height: int,
    *,
    log_y: bool = False,
    markers: Sequence[ChartMarker] = (),
    x_label: str = "step",
    axis_style: str | Style = "dim",
    empty_text: str = "no data",
    x_range: tuple[float, float] | None = None,
    cursor_x: float | None = None,
    cursor_style: str | Style = "bold",
) -> ChartResult:
    """Draw `series` into `height` Rich lines of exactly `width` cells.

    Each series is cut into one bucket per braille dot column over the shared x range;
    each column draws a vertical run of dots from the bucket's min to its max, joined to
    the neighbouring buckets, so spikes survive any amount of downsampling. Under
    `log_y`, points with y <= 0 are dropped and counted in `hidden_nonpositive`.
    Too small a size or nothing to plot gives a centred message instead of axes.
    `x_range` (a zoom) fixes the x axis: only points inside it are drawn and set the y range.
    `cursor_x` draws a vertical cursor line at that x (in blank cells, under the curves).
    """
    width, height = max(int(width), 0), max(int(height), 0)
    points_in = sum(len(s.y) for s in series)

    # Filter (log) and find the shared ranges: a few vectorised passes over each raw array.
    prepared: list[tuple[int, ChartSeries, np.ndarray, np.ndarray]] = []
    hidden = 0
    x_lo, x_hi = math.inf, -math.inf
    y_lo, y_hi = math.inf, -math.inf
    zoom = _zoom_range(x_range)
    for index, s in enumerate(series):
        x = np.asarray(s.x, dtype=np.float64)
        y = np.asarray(s.y, dtype=np.float64)
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        if zoom is not None and n:
            inside = (x >= zoom[0]) & (x <= zoom[1])
            if not inside.all():
                x, y = x[inside], y[inside]
                n = len(x)
        if log_y and n:
            keep = y > 0
            kept = int(np.count_nonzero(keep))
            if kept < n:
                hidden += n - kept
                x, y = x[keep], y[keep]
        if not len(x):
            continue
        sx, sy = _finite_span(x), _finite_span(y)
        if sx is None or sy is None:
            continue
        x_lo, x_hi = (zoom if zoom is not None else (min(x_lo, sx[0]), max(x_hi, sx[1])))
        y_lo, y_hi = min(y_lo, sy[0]), max(y_hi, sy[1])
        prepared.append((index, s, x, y))

    finite = all(math.isfinite(v) for v in (x_lo, x_hi, y_lo, y_hi))
    if not prepared or not finite:
        message = empty_text
        if hidden and log_y:
            message = f"{empty_text} (log scale hides {hidden:,} values <= 0)"
        return ChartResult(_message_lines(message, width, height), points_in, 0, hidden)
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        return ChartResult(_message_lines("too small", width, height), points_in, 0, hidden)

    # Finite extremes (±1e308, subnormals) would overflow `hi - lo` or divide by zero:
    # rescale by an exact power of two into a safe range, and scale the labels back.
    x_exp, y_exp = _safe_exponent(x_lo, x_hi), 0 if log_y else _safe_exponent(y_lo, y_hi)
    if x_exp or y_exp:
        prepared = [
            (i, s, np.ldexp(x, x_exp), np.ldexp(y, y_exp)) for i, s, x, y in prepared
        ]
        x_lo, x_hi = math.ldexp(x_lo, x_exp), math.ldexp(x_hi, x_exp)
        y_lo, y_hi = math.ldexp(y_lo, y_exp), math.ldexp(y_hi, y_exp)
        markers = [replace(m, x=_scaled(m.x, x_exp)) for m in markers]
    if x_hi == x_lo:
        x_lo, x_hi = _one_x_range(x_lo)
    v_lo, v_hi = (math.log10(y_lo), math.log10(y_hi)) if log_y else (y_lo, y_hi)
    v_lo, v_hi = _pad_range(v_lo, v_hi)

    plot_h = height - _EXTRA_ROWS
    labels = _y_labels(plot_h, v_lo, v_hi, log_y, y_exp)
    gutter = max(cell_len(text) for text in labels.values()) + 1
    plot_w = max(width - gutter, 1)
    dots_h, dots_w = plot_h * 4, plot_w * 2

    # Rasterise: merged dot bits per cell, and the index of the last series that set a dot.
    bits = np.zeros((plot_h, plot_w), dtype=np.uint8)
    owner = np.full((plot_h, plot_w), -1, dtype=np.int64)
    dot_rows = np.arange(dots_h)[:, None]
    drawn = 0
    for index, _, x, y in prepared:
        buckets = _bucket(x, y, dots_w, x_lo, x_hi, log_y)
        if buckets is None:
            continue
        drawn += buckets.n_out
        top, bottom, valid = _column_rows(buckets, v_lo, v_hi, dots_h, dots_w)
        mask = valid[None, :] & (dot_rows >= top[None, :]) & (dot_rows <= bottom[None, :])
        cell_bits = (mask.reshape(plot_h, 4, plot_w, 2) * _DOT_BITS[None, :, None, :]).sum(
            axis=(1, 3), dtype=np.uint8
        )
        bits |= cell_bits
        owner[cell_bits != 0] = index

    chars = np.where(bits == 0, 0x20, _BRAILLE + bits.astype(np.int64))
    # Best points: a distinct glyph in the series' own style, on top of the dots.
    for index, s, _, _ in prepared:
        if s.best is None:
            continue
        bx, by = s.best
        if not (math.isfinite(bx) and math.isfinite(by)):
            continue
        try:
            bx, by = math.ldexp(bx, x_exp), math.ldexp(by, y_exp)
        except OverflowError:  # far outside the plotted range (a log scale dropped its points)
            continue
        if not (math.isfinite(bx) and math.isfinite(by)) or (log_y and by <= 0):
            continue
        col = _x_to_dot(bx, x_lo, x_hi, dots_w)
        row = _v_to_dot(math.log10(by) if log_y else by, v_lo, v_hi, dots_h)
        if col is None or row is None:
            continue
        glyph = s.best_glyph[:1] if s.best_glyph and cell_len(s.best_glyph[:1]) == 1 else BEST_GLYPH
        chars[row // 4, col // 2] = ord(glyph)
        owner[row // 4, col // 2] = index

    cursor_col = None
    if cursor_x is not None and math.isfinite(cursor_x):
        cx = _scaled(cursor_x, x_exp)
        if x_lo <= cx <= x_hi:  # the column whose right edge is at or past the cursor's x
            cursor_col = min(max(math.ceil((cx - x_lo) / (x_hi - x_lo) * plot_w - 1e-9) - 1, 0), plot_w - 1)
            blank = chars[:, cursor_col] == 0x20
            chars[blank, cursor_col] = ord(CURSOR_GLYPH)
            owner[blank, cursor_col] = -2

    styles = [s.style for s in series]
    lines: list[Text] = []
    for r in range(plot_h):
        line = Text(no_wrap=True, overflow="crop", end="")
        label = labels.get(r)
        if label is None:
            line.append(" " * (gutter - 1) + "│", axis_style)
        else:
            line.append(label.rjust(gutter - 1) + "┤", axis_style)
        _append_runs(line, chars[r], owner[r], styles, cursor_style)
        lines.append(line)

    lines.append(_marker_line(markers, gutter, plot_w, x_lo, x_hi, axis_style))
    axis, tick_row = _x_axis(gutter, plot_w, x_lo, x_hi, x_label, axis_style, x_exp)
    if cursor_col is not None:
        at = gutter + cursor_col
        axis = axis[:at] + Text("┼", cursor_style) + axis[at + 1 :]
    lines += [axis, tick_row]
    lines = [line if line.cell_len == width else _fit(line, width) for line in lines]
    y_range = (_pow10(v_lo), _pow10(v_hi)) if log_y else (_unscale(v_lo, y_exp), _unscale(v_hi, y_exp))
    x_range = (_unscale(x_lo, x_exp), _unscale(x_hi, x_exp))
    return ChartResult(lines, points_in, drawn, hidden, gutter, plot_w, plot_h, x_range, y_range,
                       cursor_col)


def _zoom_range(x_range: tuple[float, float] | None) -> tuple[float, float] | None:
    """A usable zoom (finite, low < high), or None to fit the data."""
    if x_range is None:
        return None
    lo, hi = sorted((float(x_range[0]), float(x_range[1])))
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return None
    return lo, hi


def _one_x_range(x: float) -> tuple[float, float]:
    """The x axis of a chart whose points share one x: from 0 to it (steps, epochs and
    seconds count from 0), or a unit (1% of a big value) either side of a point at 0 or below."""
    if x > 0:
        return 0.0, x
    pad = max(abs(x) * 0.01, 1.0)
    return x - pad, x + pad


@dataclass(frozen=True)
class _Buckets:
    """One series' non-empty buckets: dot column, y min/max/first/last in plot units."""

    col: np.ndarray
    ymin: np.ndarray
    ymax: np.ndarray
    first: np.ndarray
    last: np.ndarray
    n_out: int


def _scaled(value: float, exp: int) -> float:
    """ldexp that gives inf instead of raising: such a value is off the chart anyway."""
    try:
        return math.ldexp(value, exp)
    except OverflowError:
        return math.copysign(math.inf, value)


def _bucket(
    x: np.ndarray, y: np.ndarray, n_columns: int, x_lo: float, x_hi: float, log_y: bool
) -> _Buckets | None:
    """Min/max bucket one series into `n_columns` dot columns; y in plot units (log10 if asked)."""
    b = minmax_buckets(x, y, n_columns, x_range=(x_lo, x_hi))  # ignores non-finite points
    if not b.n_out:
        return None
    ymin, ymax, first, last = b.ymin, b.ymax, b.first, b.last
    if log_y:  # log10 is monotonic: take it of the few bucket values, not the raw points
        ymin, ymax, first, last = (np.log10(a) for a in (ymin, ymax, first, last))
    cols = _x_to_dots(b.x, x_lo, x_hi, n_columns)  # b.x: mean x of each bucket
    return _Buckets(cols, ymin, ymax, first, last, int(b.n_out))


def _finite_span(a: np.ndarray) -> tuple[float, float] | None:
    """(min, max), ignoring NaN and inf (the fast path assumes there are none)."""
    lo, hi = float(a.min()), float(a.max())
    if math.isfinite(lo) and math.isfinite(hi):
        return lo, hi
    finite = a[np.isfinite(a)]
    return (float(finite.min()), float(finite.max())) if len(finite) else None


def _pad_range(lo: float, hi: float) -> tuple[float, float]:
    """A little air above and below; a flat line gets a band around it, never a zero span."""
    span = hi - lo
    if span <= 0 or not math.isfinite(span):
        pad = abs(lo) * 0.1 if lo != 0 else 1.0
        return lo - pad, hi + pad
    padded_lo = lo - span * 0.05
    # Non-negative data (losses, coverage) keeps its floor at zero: no axis label below 0.
    if lo >= 0 > padded_lo:
        padded_lo = 0.0
    return padded_lo, hi + span * 0.05


def _v_to_dot(v: float, lo: float, hi: float, n: int) -> int | None:
    if not lo <= v <= hi:
        return None
    return int(round((hi - v) / (hi - lo) * (n - 1)))


def _column_rows(
    b: _Buckets, v_lo: float, v_hi: float, dots_h: int, dots_w: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each dot column: the top and bottom dot rows to fill, and whether it is drawn.

    A column covers its bucket's [min, max]; between consecutive buckets a straight
    segment runs from the earlier bucket's last value to the later one's first value,
    each column taking the part of it within half a column of its centre.
    """
    cols, ymin, ymax = b.col, b.ymin, b.ymax
    lo = np.full(dots_w, np.inf)
    hi = np.full(dots_w, -np.inf)
    np.minimum.at(lo, cols, ymin)
    np.maximum.at(hi, cols, ymax)
    if len(cols) > 1:
        a, z = cols[:-1], cols[1:]
        y0, y1 = b.last[:-1], b.first[1:]
        lengths = z - a + 1
        pair = np.repeat(np.arange(len(a)), lengths)
        starts = np.cumsum(lengths) - lengths
        j = a[pair] + (np.arange(len(pair)) - starts[pair])
        span = np.maximum(z - a, 1)[pair].astype(np.float64)
        t0 = np.clip((j - 0.5 - a[pair]) / span, 0.0, 1.0)
        t1 = np.clip((j + 0.5 - a[pair]) / span, 0.0, 1.0)
        dy = (y1 - y0)[pair]
        ya, yb = y0[pair] + dy * t0, y0[pair] + dy * t1
        np.minimum.at(lo, j, np.minimum(ya, yb))
        np.maximum.at(hi, j, np.maximum(ya, yb))
    valid = np.isfinite(lo)
    scale = (dots_h - 1) / (v_hi - v_lo)
    top = np.where(valid, np.rint((v_hi - np.where(valid, hi, v_hi)) * scale), 0)
    bottom = np.where(valid, np.rint((v_hi - np.where(valid, lo, v_hi)) * scale), 0)
    top = np.clip(top, 0, dots_h - 1).astype(np.int64)
    bottom = np.clip(bottom, 0, dots_h - 1).astype(np.int64)
    return top, bottom, valid


def _append_runs(
    line: Text,
    chars: np.ndarray,
    owner: np.ndarray,
    styles: Sequence[str | Style],
    cursor_style: str | Style = "bold",
) -> None:
    """Append one plot row, one Rich span per run of cells with the same owner (-2: the cursor)."""
    text = "".join(map(chr, chars.tolist()))
    breaks = np.flatnonzero(np.diff(owner)) + 1
    bounds = [0, *breaks.tolist(), len(text)]
    for start, end in zip(bounds, bounds[1:]):
        who = int(owner[start])
        line.append(text[start:end], styles[who] if who >= 0 else (cursor_style if who == -2 else None))


def _message_lines(message: str, width: int, height: int) -> list[Text]:
    """`height` lines of `width` cells with `message` centred (cropped if it must be)."""
    lines = [Text(" " * width, no_wrap=True, end="") for _ in range(height)]
    if height and width:
        text = message if cell_len(message) <= width else message[: max(width, 0)]
        line = Text(text.center(width), "dim", no_wrap=True, end="")
        lines[(height - 1) // 2] = _fit(line, width)
    return lines


def _fit(line: Text, width: int) -> Text:
    line = line.copy()
    line.truncate(width, overflow="crop", pad=True)
    return line
