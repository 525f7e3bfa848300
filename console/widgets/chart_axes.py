"""The chart's axes: tick values, their labels, the marker row, and safe number scaling.

Split from chart_render.py, which rasterises the curves; this module decides what the
numbers around them say. Values of any finite magnitude (±1e308, subnormals) are brought
into a safe range by an exact power of two before any `hi - lo`, and labelled in data
units again here.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Sequence

import numpy as np
from rich.cells import cell_len
from rich.style import Style
from rich.text import Text

if TYPE_CHECKING:
    from trainledger.console.widgets.chart_render import ChartMarker

# Round clock steps for a time axis, in seconds (1 s ... 1 day).
_TIME_STEPS = (
    *(1, 2, 5, 10, 15, 30),  # seconds
    *(60, 120, 300, 600, 900, 1800),  # minutes
    *(3600, 7200, 10800, 21600, 43200, 86400),  # hours, a day
)


def format_compact(value: float, sig: int = 3) -> str:
    """`0.812`, `12.3k`, `4M`, `1.2e-4`: `sig` significant digits, short suffixes."""
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    mag = float(f"{abs(value):.{sig}g}")  # rounded first, so 999.96 becomes 1k, not 1e+03
    if not math.isfinite(mag):  # 1.797e308 rounds up past the largest float
        mag = abs(value)
    if mag >= 1e15:
        return sign + _short_exp(mag, sig)
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if mag >= div:
            return f"{sign}{mag / div:.{sig}g}{suffix}"
    if mag >= 1e-3:
        return f"{sign}{mag:.{sig}g}"
    return sign + _short_exp(mag, sig)


def _short_exp(mag: float, sig: int) -> str:
    mantissa, exp = f"{mag:.{max(sig - 1, 0)}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exp)}"


def format_duration(seconds: float, sig: int = 3) -> str:
    """`45s`, `12m`, `1.5h`, `3d` for an elapsed time in seconds."""
    if not math.isfinite(seconds):
        return format_compact(seconds)
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if s >= size:
            return f"{sign}{format_compact(s / size, sig)}{unit}"
    return f"{sign}{format_compact(s, sig)}s"


_SAFE_MAG = (2.0**-500, 2.0**500)


def _safe_exponent(lo: float, hi: float) -> int:
    """0 for everyday magnitudes; else the power of two that brings max(|lo|, |hi|) near 1."""
    mag = max(abs(lo), abs(hi))
    if mag == 0 or _SAFE_MAG[0] <= mag <= _SAFE_MAG[1]:
        return 0
    return -math.frexp(mag)[1]


def _unscale(value: float, exp: int) -> float:
    """`value` back in data units: exact, or ±max float where padding went past it."""
    if not exp:
        return value
    try:
        return math.ldexp(value, -exp)
    except OverflowError:
        return math.copysign(sys.float_info.max, value)


def _pow10(value: float) -> float:
    try:
        return 10.0**value
    except OverflowError:
        return sys.float_info.max


def _x_to_dots(x: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    cols = np.floor((x - lo) * (n / (hi - lo)))
    return np.clip(cols, 0, n - 1).astype(np.int64)


def _x_to_dot(x: float, lo: float, hi: float, n: int) -> int | None:
    if not lo <= x <= hi:
        return None
    return int(_x_to_dots(np.array([x]), lo, hi, n)[0])


def _y_labels(
    plot_h: int, v_lo: float, v_hi: float, log_y: bool, exp: int = 0
) -> dict[int, str]:
    """Tick labels by plot row: top, middle and bottom, more on a tall chart (<= 4 rows apart)."""
    count = 1 + 2 * math.ceil(max(plot_h - 1, 1) / 8)
    rows = sorted({int(round(r)) for r in np.linspace(0, plot_h - 1, count)})
    dots_h = plot_h * 4
    values = []
    for r in rows:
        dot = 0.0 if r == 0 else (dots_h - 1.0 if r == plot_h - 1 else 4 * r + 1.5)
        v = v_hi - dot / (dots_h - 1) * (v_hi - v_lo)
        values.append(_pow10(v) if log_y else _unscale(v, exp))
    for sig in range(3, 7):  # more digits until neighbouring labels differ
        texts = [format_compact(v, sig) for v in values]
        if len(set(texts)) == len(texts):
            break
    return dict(zip(rows, texts))


def _nice_ticks(
    lo: float, hi: float, max_ticks: int, time: bool, whole: bool = False
) -> list[float]:
    """Round tick values (1-2-5 steps, or clock steps for time) inside [lo, hi];
    `whole`: never closer than 1 apart (steps are counted, a tick at step 0.2 means nothing)."""
    span = hi - lo
    raw = span / max(max_ticks - 1, 1)
    if raw <= 0 or not math.isfinite(raw):
        return [lo]
    if time and 1 <= raw <= _TIME_STEPS[-1]:
        step = float(next(s for s in _TIME_STEPS if s >= raw))
    elif time and raw > _TIME_STEPS[-1]:
        step = 86400.0 * _nice_step(raw / 86400.0)
    else:
        step = _nice_step(raw)
    if whole:
        step = max(step, 1.0)
    ticks = _ticks_of(lo, hi, step)
    if len(ticks) < 2 and not time:  # a 1-2-5 step just over half the span: one tick only
        finer = _nice_step(raw / 2.5)
        if not whole or finer >= 1.0:
            ticks = _ticks_of(lo, hi, finer) or ticks
    return ticks


def _ticks_of(lo: float, hi: float, step: float) -> list[float]:
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [i * step for i in range(first, last + 1)]


def _nice_step(raw: float) -> float:
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * power >= raw * (1 - 1e-9):
            return m * power
    return 10.0 * power


def _x_axis(
    gutter: int,
    plot_w: int,
    x_lo: float,
    x_hi: float,
    x_label: str,
    axis_style: str | Style,
    exp: int = 0,
) -> tuple[Text, Text]:
    """The axis line (with a tick mark per label) and the row of tick labels under it.

    The axis's name goes in the gutter left of the tick labels when it fits there, else at
    the right end of the tick row (so `epoch` is named beside a narrow gutter too).
    """
    is_time = x_label == "time"
    fmt = format_duration if is_time else format_compact
    label_room = gutter - 1
    in_gutter = cell_len(x_label) <= label_room
    name_cells = 0 if in_gutter or cell_len(x_label) + 1 > plot_w // 2 else cell_len(x_label) + 1
    max_ticks = max(2, (plot_w - name_cells) // 7)
    ticks = _nice_ticks(x_lo, x_hi, max_ticks, is_time, whole=x_label == "step" and not exp)
    axis = ["─"] * plot_w
    row = [" "] * plot_w
    free_from = 0
    room = plot_w - name_cells  # tick labels end before the name
    for t in ticks:
        col = _x_to_dot(t, x_lo, x_hi, plot_w * 2)
        if col is None:
            continue
        col //= 2
        zero = abs(t) < 1e-12 * max(abs(x_lo), abs(x_hi), 0.0 if exp else 1.0)
        label = fmt(0.0 if zero else _unscale(t, exp))
        start = min(max(col - len(label) // 2, 0), plot_w - len(label))
        if start < free_from or start < 0 or start + len(label) > room:
            continue
        axis[col] = "┬"
        row[start : start + len(label)] = list(label)
        free_from = start + len(label) + 1
    if name_cells:
        row[plot_w - name_cells + 1 :] = list(x_label)
    axis_line = Text(" " * (gutter - 1) + "└" + "".join(axis), axis_style, no_wrap=True, end="")
    name = x_label if in_gutter else ""
    tick_line = Text(name.rjust(label_room) + " " + "".join(row), axis_style, no_wrap=True, end="")
    return axis_line, tick_line


def _marker_line(
    markers: Sequence[ChartMarker],
    gutter: int,
    plot_w: int,
    x_lo: float,
    x_hi: float,
    axis_style: str | Style,
) -> Text:
    """One row under the plot: each marker's glyph at its x column (later markers win)."""
    placed: dict[int, tuple[str, str | Style]] = {}
    for m in markers:
        if not math.isfinite(m.x):
            continue
        col = _x_to_dot(m.x, x_lo, x_hi, plot_w * 2)
        if col is None:
            continue
        glyph = m.glyph[:1] if m.glyph and cell_len(m.glyph[:1]) == 1 else "•"
        placed[col // 2] = (glyph, m.style)
    line = Text(" " * (gutter - 1) + "│", axis_style, no_wrap=True, end="")
    at = 0
    for col in sorted(placed):
        glyph, style = placed[col]
        line.append(" " * (col - at))
        line.append(glyph, style)
        at = col + 1
    line.append(" " * (plot_w - at))
    return line
