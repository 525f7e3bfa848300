"""The LineChart widget: shows `render_chart` at its size, cached per data version.

The drawing itself is in chart_render.py; this module only adds what a widget needs
(size, theme colour for the axes, a cache so repaints cost nothing).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.widget import Widget

from trainledger.console.widgets.chart_axes import format_compact, format_duration
from trainledger.console.widgets.chart_render import (
    BEST_GLYPH,
    MIN_HEIGHT,
    MIN_WIDTH,
    ChartMarker,
    ChartResult,
    ChartSeries,
    render_chart,
)
from trainledger.console.widgets.chart_render import _fit as fit_line

MAX_READOUT_ROWS = 6

__all__ = [
    "BEST_GLYPH",
    "MIN_HEIGHT",
    "MIN_WIDTH",
    "ChartMarker",
    "ChartResult",
    "ChartSeries",
    "LineChart",
    "format_compact",
    "format_duration",
    "render_chart",
]


# ---------------------------------------------------------------------------- the widget


class LineChart(Widget):
    """Shows `render_chart` at the widget's content size; `last_result` holds the counts.

    Call `set_data` with new series; the chart re-renders only when the data version,
    the size or the axis style changes.

    The chart takes the focus (Tab, or a click): a vertical cursor then moves across x with
    ←/→ (shift: 10 columns, home/end: the ends) and a readout under the plot gives every
    plotted run's value at the cursor (its last point at or before the cursor's x). The keys
    are the chart's own, so ←/→ keep scrolling the run list when the list has the focus.
    Escape hides the cursor. `zoom_key` / `reset_zoom` (the pane's `z` / `Z`) zoom x.
    """

    can_focus = True
    BINDINGS = [
        Binding("left", "cursor(-1)", "Cursor ←", show=False, id="chart.cursor_left"),
        Binding("right", "cursor(1)", "Cursor →", show=False, id="chart.cursor_right"),
        Binding("shift+left", "cursor(-10)", "Cursor ← 10", show=False, id="chart.cursor_left10"),
        Binding("shift+right", "cursor(10)", "Cursor → 10", show=False, id="chart.cursor_right10"),
        Binding("home", "cursor_end(0)", "Cursor to start", show=False, id="chart.cursor_home"),
        Binding("end", "cursor_end(1)", "Cursor to end", show=False, id="chart.cursor_end"),
        Binding("escape", "hide_cursor", "Hide cursor", show=False, id="chart.cursor_hide"),
    ]
    COMPONENT_CLASSES = {"line-chart--axis", "line-chart--cursor"}
    DEFAULT_CSS = """
    LineChart {
        width: 1fr;
        height: 1fr;
        min-height: 5;
    }
    LineChart > .line-chart--axis {
        color: $text-muted;
    }
    LineChart > .line-chart--cursor {
        color: $accent;
        text-style: bold;
    }
    LineChart:focus > .line-chart--axis {
        color: $text;
    }
    """

    def __init__(
        self,
        *,
        empty_text: str = "no data",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.empty_text = empty_text
        self._series: tuple[ChartSeries, ...] = ()
        self._markers: tuple[ChartMarker, ...] = ()
        self._log_y = False
        self._x_label = "step"
        self._version = 0
        self._cache_key: tuple[object, ...] | None = None
        self._cached_text = Text()
        self.last_result: ChartResult | None = None
        self.cursor_x: float | None = None  # in x-axis units; None: no cursor
        self.zoom: tuple[float, float] | None = None
        self.zoom_mark: float | None = None  # the first end of a zoom being chosen
        self.cursor_follows = False  # on the newest point: it stays there as rows arrive
        self.readout: list[Text] = []  # the lines under the plot, as last rendered
        self.on_data: Callable[[], None] | None = None  # called after every set_data

    def set_data(
        self,
        series: Sequence[ChartSeries],
        markers: Sequence[ChartMarker] = (),
        *,
        log_y: bool = False,
        x_label: str = "step",
        empty_text: str | None = None,
    ) -> None:
        """Replace what the chart shows and schedule a repaint.

        `empty_text`, when given, replaces the message shown if nothing can be plotted.
        """
        if empty_text is not None:
            self.empty_text = empty_text
        self._series = tuple(series)
        self._markers = tuple(markers)
        self._log_y = log_y
        if x_label != self._x_label:  # other units: a zoom or cursor in the old ones means nothing
            self.cursor_x = self.zoom = self.zoom_mark = None
        self._x_label = x_label
        self._version += 1
        if self.content_size.area:
            self._render_cached()  # so `last_result` is current as soon as this returns
        self.refresh()
        if self.on_data is not None:
            self.on_data()

    @property
    def series(self) -> tuple[ChartSeries, ...]:
        return self._series

    @property
    def x_label(self) -> str:
        return self._x_label

    # ------------------------------------------------------------------ cursor and zoom
    def _changed(self) -> None:
        self._version += 1
        if self.content_size.area:
            self._render_cached()
        self.refresh()

    def _col_x(self, col: int) -> float | None:
        """The x at the right edge of plot column `col` (the cursor reads points up to it)."""
        r = self.last_result
        if r is None or r.x_range is None or not r.plot_width:
            return None
        lo, hi = r.x_range
        col = min(max(col, 0), r.plot_width - 1)
        self.cursor_follows = col == r.plot_width - 1
        if col == r.plot_width - 1:
            return hi
        return lo + (hi - lo) * (col + 1) / r.plot_width

    def action_cursor(self, delta: int) -> None:
        r = self.last_result
        if r is None or r.x_range is None:
            return
        if self.cursor_x is None or r.cursor_col is None:
            col = r.plot_width - 1  # first press: at the newest point
        else:
            col = r.cursor_col + delta
        self.cursor_x = self._col_x(col)
        self._changed()

    def action_cursor_end(self, end: int) -> None:
        r = self.last_result
        if r is None or r.x_range is None:
            return
        self.cursor_x = self._col_x(0 if not end else r.plot_width - 1)
        self._changed()

    def action_hide_cursor(self) -> None:
        if self.cursor_x is not None or self.zoom_mark is not None:
            self.cursor_x = self.zoom_mark = None
            self._changed()

    def on_focus(self) -> None:
        if self.cursor_x is None:
            if self.last_result is None or self.last_result.x_range is None:
                self.call_after_refresh(self._cursor_on)  # not drawn yet
            else:
                self.action_cursor(0)

    def _cursor_on(self) -> None:
        if self.cursor_x is None and self.has_focus:
            self._render_cached()
            self.action_cursor(0)

    def zoom_key(self) -> str:
        """`z`: with the cursor, the first press marks one end and the second zooms to the
        range between the mark and the cursor; without it, zoom in 2x around the middle.
        Returns what happened, for a notification."""
        r = self.last_result
        if r is None or r.x_range is None:
            return "nothing to zoom"
        lo, hi = r.x_range
        name = self._x_label
        if self.cursor_x is not None:
            if self.zoom_mark is None:
                self.zoom_mark = self.cursor_x
                self._changed()
                return f"zoom from {name} {_num(self.cursor_x)}: move the cursor, press z again"
            a, b = sorted((self.zoom_mark, self.cursor_x))
            self.zoom_mark = None
            if b - a <= (hi - lo) / max(r.plot_width, 1):  # the same column: zoom in around it
                half = (hi - lo) / 4
                a, b = self.cursor_x - half, self.cursor_x + half
        else:
            mid, half = (lo + hi) / 2, (hi - lo) / 4
            a, b = mid - half, mid + half
        if not (math.isfinite(a) and math.isfinite(b)) or b <= a:
            return "cannot zoom further"
        self.zoom = (a, b)
        self._changed()
        return f"zoomed to {name} {_num(a)} … {_num(b)} (Z resets)"

    def reset_zoom(self) -> bool:
        had = self.zoom is not None or self.zoom_mark is not None
        self.zoom = self.zoom_mark = None
        self._changed()
        return had

    def _newest_x(self) -> float | None:
        """The right end of the x axis: the zoom's, else the largest x of any series."""
        if self.zoom is not None:
            return max(self.zoom)
        ends = [float(np.nanmax(s.x)) for s in self._series if len(s.x)]
        ends = [e for e in ends if math.isfinite(e)]
        return max(ends) if ends else self.cursor_x

    def values_at(self, x: float) -> list[tuple[ChartSeries, float | None, float | None]]:
        """Each series' last point at or before `x`: (series, its x, its y), or Nones."""
        return [(s, *_point_at(s, x)) for s in self._series]

    def _readout(self, width: int, rows: int, cursor_style: Style) -> list[Text]:
        """The lines under the plot: the cursor's x and each run's value there, the zoom."""
        name = self._x_label
        head = Text(no_wrap=True, end="")
        entries: list[Text] = []
        if self.cursor_x is not None:
            head.append(f"│ {name} ≤ {_num(self.cursor_x)}", cursor_style)
            for s, px, py in self.values_at(self.cursor_x):
                t = Text(no_wrap=True, end="")
                t.append("■ ", s.style)
                t.append(s.label)
                t.append(f" {'—' if py is None else _num(py)}")
                if px is not None:
                    t.append(f" @{_num(px)}", "dim")
                entries.append(t)
        if self.zoom_mark is not None:
            head.append(f"  zoom from {_num(self.zoom_mark)}: z again", cursor_style)
        if self.zoom is not None:
            head.append(f"  zoom {_num(self.zoom[0])}…{_num(self.zoom[1])} (Z resets)", "dim")
        lines: list[Text] = []
        line = head
        for i, e in enumerate(entries):
            if line.cell_len and line.cell_len + 2 + e.cell_len > width:
                if len(lines) + 1 >= rows:
                    more = len(entries) - i
                    tail = Text(f"  +{more} more", "dim")
                    cut = max(width - tail.cell_len, 0)
                    line = fit_line(line, cut) + tail if line.cell_len > cut else line + tail
                    break
                lines.append(line)
                line = Text(no_wrap=True, end="")
            elif line.cell_len:
                line.append("  ")
            line.append_text(e)
        lines.append(line)
        return [fit_line(x, width) for x in lines[:rows]]

    def _readout_rows(self, height: int) -> int:
        if self.cursor_x is None and self.zoom is None and self.zoom_mark is None:
            return 0
        if self.cursor_x is None:
            return 1
        return max(1, min(MAX_READOUT_ROWS, 1 + len(self._series), (height - MIN_HEIGHT) // 2))

    def render(self) -> Text:
        return self._render_cached()

    def _render_cached(self) -> Text:
        size = self.content_size
        # Only the colour: the full component style also carries the background.
        axis_style = Style(color=self.get_component_rich_style("line-chart--axis").color)
        key = (self._version, size.width, size.height, str(axis_style))
        if key != self._cache_key or self.last_result is None:
            cursor_style = self.get_component_rich_style("line-chart--cursor")
            cursor_style = Style(color=cursor_style.color, bold=cursor_style.bold)
            rows = self._readout_rows(size.height) if self._series else 0
            if self.cursor_follows and self.cursor_x is not None:
                self.cursor_x = self._newest_x()
            self.readout = self._readout(size.width, rows, cursor_style) if rows else []
            extra = len(self.readout)
            result = render_chart(
                self._series,
                size.width,
                size.height - extra,
                log_y=self._log_y,
                markers=self._markers,
                x_label=self._x_label,
                axis_style=axis_style,
                empty_text=self.empty_text,
                x_range=self.zoom,
                cursor_x=self.cursor_x,
                cursor_style=cursor_style,
            )
            self.last_result = result
            self._cached_text = Text("\n", no_wrap=True, end="").join([*result.lines, *self.readout])
            self._cached_text.no_wrap = True
            self._cache_key = key
        return self._cached_text


def _num(v: float) -> str:
    """A cursor or zoom position: whole numbers as such, else 4 significant digits."""
    if not math.isfinite(v):
        return format_compact(v)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.4g}" if abs(v) >= 1e-3 else f"{v:.3e}"


def _point_at(s: ChartSeries, x: float) -> tuple[float | None, float | None]:
    """The series' point with the largest x at or before `x` (the last such row on a tie,
    so a resumed run that logged a step twice reads its newer value)."""
    xs = np.asarray(s.x, dtype=np.float64)
    ys = np.asarray(s.y, dtype=np.float64)
    n = min(len(xs), len(ys))
    if not n:
        return None, None
    xs, ys = xs[:n], ys[:n]
    if n > 1 and np.all(xs[1:] >= xs[:-1]):
        i = int(np.searchsorted(xs, x, side="right")) - 1
        if i < 0:
            return None, None
    else:
        ok = np.flatnonzero(xs <= x)
        if not len(ok):
            return None, None
        best = xs[ok].max()
        i = int(ok[np.flatnonzero(xs[ok] == best)[-1]])
    if xs[i] > x:
        return None, None
    return float(xs[i]), float(ys[i])
