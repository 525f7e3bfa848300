"""The LineChart widget: shows `render_chart` at its size, cached per data version.

The drawing itself is in chart_render.py; this module only adds what a widget needs
(size, theme colour for the axes, a cache so repaints cost nothing).
"""

from __future__ import annotations

from typing import Sequence

from rich.style import Style
from rich.text import Text
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
    """

    COMPONENT_CLASSES = {"line-chart--axis"}
    DEFAULT_CSS = """
    LineChart {
        width: 1fr;
        height: 1fr;
        min-height: 5;
    }
    LineChart > .line-chart--axis {
        color: $text-muted;
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
        self._x_label = x_label
        self._version += 1
        if self.content_size.area:
            self._render_cached()  # so `last_result` is current as soon as this returns
        self.refresh()

    def render(self) -> Text:
        return self._render_cached()

    def _render_cached(self) -> Text:
        size = self.content_size
        # Only the colour: the full component style also carries the background.
        axis_style = Style(color=self.get_component_rich_style("line-chart--axis").color)
        key = (self._version, size.width, size.height, str(axis_style))
        if key != self._cache_key or self.last_result is None:
            result = render_chart(
                self._series,
                size.width,
                size.height,
                log_y=self._log_y,
                markers=self._markers,
                x_label=self._x_label,
                axis_style=axis_style,
                empty_text=self.empty_text,
            )
            self.last_result = result
            self._cached_text = Text("\n", no_wrap=True, end="").join(result.lines)
            self._cached_text.no_wrap = True
            self._cache_key = key
        return self._cached_text
