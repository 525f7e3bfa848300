"""The Curves pane's chart keys: the grid of small charts, the cursor, zoom and CSV export.

A mixin of CurvesPane (so `self` is the pane); its bindings are CHART_BINDINGS, added to the pane's.

- `g` swaps the big chart for a ChartGrid of every metric the filter matches (for the
  plotted runs); `enter` on a cell shows that metric full size, `g`/`esc` goes back.
- The cursor lives on the LineChart (it takes the focus; ←/→ are its keys, so they never
  reach the run list's DataTable); `z` zooms (see LineChart.zoom_key), `Z` resets.
- `E` writes the chart's data to `<ws>/exports/<metric>-<UTC stamp>.csv` in a thread worker
  (console/chart_export.py has the format) and says where.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from textual import work
from textual.binding import Binding

from trainledger.console.chart_export import ExportRun, export_run, write_export
from trainledger.console.curves_view import build_chart
from trainledger.console.styles import rich_style
from trainledger.console.text import clean, notify_plain
from trainledger.console.widgets.chart import LineChart
from trainledger.console.widgets.chart_grid import ChartGrid
from trainledger.console.widgets.chart_render import ChartSeries
from trainledger.themes import marker_styles, series_styles

if TYPE_CHECKING:
    from trainledger.console.panes.curves import CurvesPane

    _Base = CurvesPane
else:
    _Base = object

CHART_BINDINGS: list[Binding] = [
    Binding("g", "toggle_grid", "Grid", id="curves.grid"),
    Binding("z", "zoom", "Zoom", id="curves.zoom", show=False),
    Binding("Z", "reset_zoom", "Reset zoom", id="curves.zoom_reset", show=False),
    Binding("E", "export_chart", "Export CSV", id="curves.export", show=False),
]


class ChartKeys(_Base):
    """The actions behind CHART_BINDINGS."""

    # ------------------------------------------------------------------ the grid
    def grid(self) -> ChartGrid | None:
        found = self.query(ChartGrid)
        return found.first() if found else None

    @property
    def grid_shown(self) -> bool:
        grid = self.grid()
        return grid is not None and grid.display

    def action_toggle_grid(self) -> None:
        if self.grid_shown:
            self._close_grid()
        else:
            self._open_grid()

    def _open_grid(self) -> None:
        chart = self.query_one(LineChart)
        grid = self.grid()
        if grid is None:
            grid = ChartGrid(id="chart-grid")
            self.query_one("#chart-side").mount(grid, after=chart)
        chart.display = False
        grid.display = True
        chart.on_data = self._refresh_grid  # every redraw of the pane refreshes the grid too
        self._refresh_grid(current=self.state.metric)
        self._update_footer(self.plotted())  # the single chart's point count goes: each cell has its own
        grid.focus()

    def _close_grid(self, focus: bool = True) -> None:
        chart = self.query_one(LineChart)
        grid = self.grid()
        chart.on_data = None
        if grid is not None:
            grid.display = False
        chart.display = True
        self._update_footer(self.plotted())
        if focus:
            self.query_one("#runs").focus()

    def _grid_series(self, metric: str) -> Sequence[ChartSeries]:
        theme = self.app.theme
        styles = [rich_style(s) for s in series_styles(theme)]
        mstyles = {k: rich_style(v) for k, v in marker_styles(theme).items()}
        model = build_chart(metric, self.plotted(), self.snapshots, self.infos, self.state,
                            styles, mstyles, self.color_index, view=self.view)
        return model.series

    def _refresh_grid(self, current: str | None = None) -> None:
        grid = self.grid()
        if grid is None or not grid.display:
            return
        grid.set_metrics(self.current_names(), self._grid_series, log_y=self.state.log_y,
                         x_label=self.state.x_axis, current=current)

    def on_chart_grid_opened(self, message: ChartGrid.Opened) -> None:
        message.stop()
        self.state.metric = message.metric
        self.state.metric_chosen = True
        self._close_grid(focus=False)
        self.redraw()
        self.query_one(LineChart).focus()

    def on_chart_grid_closed(self, message: ChartGrid.Closed) -> None:
        message.stop()
        self._close_grid()

    # ------------------------------------------------------------------ zoom
    def action_zoom(self) -> None:
        if self.grid_shown:
            return
        chart = self.query_one(LineChart)
        said = chart.zoom_key()
        if chart.zoom is None and chart.zoom_mark is None:  # else the readout line says it
            notify_plain(self, said, title="Zoom", timeout=3)

    def action_reset_zoom(self) -> None:
        self.query_one(LineChart).reset_zoom()

    # ------------------------------------------------------------------ export
    def action_export_chart(self) -> None:
        metric = self.state.metric
        if self.grid_shown and self.grid() is not None and self.grid().current:  # type: ignore[union-attr]
            metric = self.grid().current  # type: ignore[union-attr]
        if metric is None:
            notify_plain(self, "no metric on the chart to export", title="Export", severity="warning")
            return
        chart = self.query_one(LineChart)
        jobs = []
        for run_id in self.plotted():
            snap = self.snapshots.get(run_id)
            if snap is None or metric not in snap.metrics:
                continue
            info = self.infos.get(run_id)
            jobs.append((snap, clean(info.label if info else run_id)))
        if not jobs:
            notify_plain(self, f"no plotted run has {metric}", title="Export", severity="warning")
            return
        zoom = None if self.grid_shown else chart.zoom
        self._export_worker(metric, jobs, self.state.x_axis, self.state.smoothing, self.state.log_y, zoom)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chart-export",
          description="export the chart to CSV")
    def _export_worker(self, metric: str, jobs: list, x_axis: str, smoothing: float,
                       log_y: bool, zoom: tuple[float, float] | None) -> None:
        try:
            runs: list[ExportRun] = [
                export_run(snap, metric, name, x_axis=x_axis, smoothing=smoothing, log_y=log_y, zoom=zoom)
                for snap, name in jobs
            ]
            path, rows = write_export(self.workspace.root, metric, runs)
        except OSError as exc:
            self.app.call_from_thread(notify_plain, self, f"could not write the CSV: {exc}",
                                      title="Export", severity="error")
            return
        said = f"{rows:,} rows of {metric} ({len(runs)} run{'' if len(runs) == 1 else 's'}) written to {path}"
        self.app.call_from_thread(self._exported, path, said)

    def _exported(self, path: object, said: str) -> None:
        self.last_export = path  # the newest CSV written, and what was said of it (tests read them)
        self.last_export_said = said
        notify_plain(self, said, title="Export", timeout=8)

