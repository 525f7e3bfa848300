"""A grid of small charts, one per metric (W&B's panels, TensorBoard's scalar dashboard).

The Curves pane's `g` shows it in place of the big chart. Each cell is `render_chart` at
the cell's size, titled with its metric, with each run's best marker and "N of M points";
as many cells as the size allows (at least 22x8 cells each), paged. Only the metrics of the
page on screen are built (the pane's `build` callback), so a thousand metrics cost a page.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

from trainledger.console.text import clean
from trainledger.console.widgets.chart_render import ChartResult, ChartSeries, _fit, render_chart

CELL_MIN_WIDTH = 22  # a 21-cell chart and a gap: two across at 80x24
CELL_MIN_HEIGHT = 8  # title, 5 chart rows at least, the points line, a gap
MAX_COLUMNS = 4
MAX_ROWS = 4

Build = Callable[[str], Sequence[ChartSeries]]


def grid_shape(width: int, height: int, n: int) -> tuple[int, int]:
    """(columns, rows) of cells for a `width` x `height` area (one row kept for the status)
    and `n` metrics: as many as fit, no more than there are metrics."""
    cols = max(1, min(MAX_COLUMNS, width // CELL_MIN_WIDTH))
    rows = max(1, min(MAX_ROWS, (height - 1) // CELL_MIN_HEIGHT))
    if n and n < cols * rows:
        rows = max(1, min(rows, math.ceil(n / cols)))
        cols = max(1, min(cols, math.ceil(n / rows)))
    return cols, rows


class ChartGrid(Widget):
    """Small charts of many metrics; arrows move, PageUp/PageDown page, Enter opens one."""

    can_focus = True
    BINDINGS = [
        Binding("left", "move(-1, 0)", "Left", show=False, id="grid.left"),
        Binding("right", "move(1, 0)", "Right", show=False, id="grid.right"),
        Binding("up", "move(0, -1)", "Up", show=False, id="grid.up"),
        Binding("down", "move(0, 1)", "Down", show=False, id="grid.down"),
        Binding("pageup", "page(-1)", "Prev page", show=False, id="grid.page_up"),
        Binding("pagedown", "page(1)", "Next page", show=False, id="grid.page_down"),
        Binding("home", "first", "First", show=False, id="grid.first"),
        Binding("end", "last", "Last", show=False, id="grid.last"),
        Binding("enter", "open", "Open full size", id="grid.open"),
        Binding("escape", "close", "Close grid", show=False, id="grid.close"),
    ]
    COMPONENT_CLASSES = {"chart-grid--axis", "chart-grid--title", "chart-grid--selected"}
    DEFAULT_CSS = """
    ChartGrid { width: 1fr; height: 1fr; min-height: 5; }
    ChartGrid > .chart-grid--axis { color: $text-muted; }
    ChartGrid > .chart-grid--title { text-style: bold; }
    ChartGrid > .chart-grid--selected { color: $text; background: $accent 40%; text-style: bold; }
    ChartGrid:focus > .chart-grid--selected { background: $accent; }
    """

    class Opened(Message):
        """Enter on a cell: show this metric full size."""

        def __init__(self, metric: str) -> None:
            super().__init__()
            self.metric = metric

    class Closed(Message):
        """Escape: back to the single chart."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.metrics: list[str] = []
        self.selected = 0  # index into metrics
        self._build: Build | None = None
        self._log_y = False
        self._x_label = "step"
        self._version = 0
        self._cache_key: tuple[object, ...] | None = None
        self._cached = Text()
        self.results: dict[str, ChartResult] = {}  # the cells last drawn, by metric

    def set_metrics(
        self, metrics: Sequence[str], build: Build, *, log_y: bool = False, x_label: str = "step",
        current: str | None = None,
    ) -> None:
        """New metrics (or new data for them); `current` moves the selection onto it once."""
        old = self.metrics[self.selected] if self.metrics and self.selected < len(self.metrics) else None
        self.metrics = list(metrics)
        want = current if current is not None else old
        if want in self.metrics:
            self.selected = self.metrics.index(want)  # type: ignore[arg-type]
        self.selected = min(self.selected, max(len(self.metrics) - 1, 0))
        self._build = build
        self._log_y = log_y
        self._x_label = x_label
        self._changed()

    def _changed(self) -> None:
        self._version += 1
        self.refresh()

    # ------------------------------------------------------------------ geometry and paging
    def shape(self) -> tuple[int, int]:
        size = self.content_size
        return grid_shape(size.width, size.height, len(self.metrics))

    def per_page(self) -> int:
        cols, rows = self.shape()
        return cols * rows

    def page_range(self) -> tuple[int, int]:
        """[first, last) metric indices of the page holding the selection."""
        per = self.per_page()
        first = (self.selected // per) * per
        return first, min(first + per, len(self.metrics))

    @property
    def current(self) -> str | None:
        return self.metrics[self.selected] if self.metrics else None

    def status(self) -> str:
        n = len(self.metrics)
        if not n:
            return "no metrics"
        first, last = self.page_range()
        pages = math.ceil(n / self.per_page())
        page = first // self.per_page() + 1
        shown = f"{first + 1}–{last}" if last - first > 1 else f"{first + 1}"
        tail = f" · page {page}/{pages} PgUp/PgDn" if pages > 1 else ""
        return f"{shown} of {n} metrics{tail} · arrows move · enter opens · g/esc closes"

    # ------------------------------------------------------------------ keys
    def action_move(self, dx: int, dy: int) -> None:
        if not self.metrics:
            return
        cols, _ = self.shape()
        target = self.selected + dx + dy * cols
        if 0 <= target < len(self.metrics):
            self.selected = target
            self._changed()

    def action_page(self, delta: int) -> None:
        if not self.metrics:
            return
        per = self.per_page()
        first = (self.selected // per + delta) * per
        if 0 <= first < len(self.metrics):
            self.selected = min(first + self.selected % per, len(self.metrics) - 1)
            self._changed()

    def action_first(self) -> None:
        self.selected = 0
        self._changed()

    def action_last(self) -> None:
        self.selected = max(len(self.metrics) - 1, 0)
        self._changed()

    def action_open(self) -> None:
        if self.current is not None:
            self.post_message(self.Opened(self.current))

    def action_close(self) -> None:
        self.post_message(self.Closed())

    # ------------------------------------------------------------------ drawing
    def render(self) -> Text:
        size = self.content_size
        axis = Style(color=self.get_component_rich_style("chart-grid--axis").color)
        title = self.get_component_rich_style("chart-grid--title")
        chosen = self.get_component_rich_style("chart-grid--selected")
        key = (self._version, size.width, size.height, str(axis), str(chosen), self.has_focus)
        if key != self._cache_key:
            self._cached = self._draw(size.width, size.height, axis, title, chosen)
            self._cache_key = key
        return self._cached

    def _draw(self, width: int, height: int, axis: Style, title: Style, chosen: Style) -> Text:
        if width <= 0 or height <= 0:
            return Text()
        if not self.metrics or self._build is None:
            lines = [Text(" " * width) for _ in range(height)]
            lines[(height - 1) // 2] = _fit(Text("no metric to show".center(width), "dim"), width)
            return Text("\n", no_wrap=True, end="").join(lines)
        cols, rows = self.shape()
        cell_w = width // cols
        cell_h = max((height - 1) // rows, 1)
        first, last = self.page_range()
        blank = Text(" " * cell_w, no_wrap=True, end="")
        grid: list[list[Text]] = [[] for _ in range(rows * cell_h)]
        self.results = {}
        for slot in range(cols * rows):
            r, c = divmod(slot, cols)
            i = first + slot
            if i < last:
                cell = self._cell(self.metrics[i], cell_w, cell_h, axis, title,
                                  chosen if i == self.selected else None)
            else:
                cell = [blank] * cell_h
            for k, line in enumerate(cell):
                grid[r * cell_h + k].append(line)
        out = [_fit(Text("", no_wrap=True, end="").join(parts), width) for parts in grid]
        out = out[: height - 1]
        while len(out) < height - 1:
            out.append(Text(" " * width, no_wrap=True, end=""))
        out.append(_fit(Text(self.status(), "dim", no_wrap=True, end=""), width))
        return Text("\n", no_wrap=True, end="").join(out)

    def _cell(self, metric: str, w: int, h: int, axis: Style, title: Style,
              chosen: Style | None) -> list[Text]:
        """One small chart: a title row, the chart, "N of M points", one blank column right."""
        assert self._build is not None
        inner = max(w - 1, 1)
        series = list(self._build(metric))
        result = render_chart(series, inner, max(h - 2, 1), log_y=self._log_y,
                              x_label=self._x_label, axis_style=axis,
                              empty_text=f"no {clean(metric)}")
        self.results[metric] = result
        head = Text(("▸ " if chosen is not None else "  ") + clean(metric), chosen or title,
                    no_wrap=True, end="")
        points = Text(f"{result.points_drawn:,} of {result.points_in:,} points", "dim",
                      no_wrap=True, end="")
        lines = [head, *result.lines, points][:h]
        pad = Text(" ", no_wrap=True, end="")
        return [_fit(line, inner) + pad for line in lines]
