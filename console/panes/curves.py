"""The Curves pane: every run's metrics, live, with the keys of a terminal chart viewer.

Files are read in thread workers (engines.metrics.series); the results come back as
SeriesRefreshed messages and the pane only renders. Refreshes of one run never
overlap: a change that arrives while one is in flight marks the run dirty and a
second refresh follows.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static

from trainledger.console.curves_view import (
    SMOOTHING,
    X_AXES,
    CurvesState,
    build_chart,
    compile_filter,
    default_metric,
    metric_names,
    plotted_run_ids,
)
from trainledger.console.messages import RunFilesChanged, RunsChanged, RunsListed, SeriesRefreshed
from trainledger.console.panes.run_control import RunControl
from trainledger.console.styles import rich_style
from trainledger.console.widgets.chart import LineChart
from trainledger.console.widgets.runlist import RunList
from trainledger.console.prefetch import Prefetch, newest
from trainledger.engines.metrics.series import RunSeries, SeriesSnapshot
from trainledger.engines.metrics.view import MetricView, metric_view
from trainledger.engines.workspace import RunInfo, Workspace, list_runs
from trainledger.themes import marker_styles, series_styles


class CurvesPane(RunControl, Widget):
    """Runs on the left, the chart of one metric for the chosen runs on the right."""

    DEFAULT_CSS = """
    CurvesPane { height: 1fr; }
    CurvesPane > Horizontal { height: 1fr; }
    CurvesPane RunList { width: 30; border-right: vkey $panel; }
    CurvesPane.-wide RunList { width: 44; }
    CurvesPane.-wide.-extra RunList { width: 84; }
    CurvesPane #chart-side { width: 1fr; padding: 0 0 0 1; }
    CurvesPane #curves-header { height: 1; }
    CurvesPane #metric-filter { display: none; height: 3; }
    CurvesPane #metric-filter.-shown { display: block; }
    CurvesPane #metric-filter.-invalid { border: tall $error; }
    CurvesPane LineChart { height: 1fr; min-height: 5; }
    CurvesPane #legend { height: auto; max-height: 4; }
    CurvesPane #curves-footer { height: 1; color: $text-muted; }
    """

    BINDINGS = [
        Binding("right_square_bracket", "next_metric", "Next metric", id="curves.next_metric"),
        Binding("left_square_bracket", "prev_metric", "Prev metric", id="curves.prev_metric"),
        Binding("slash", "filter", "Filter", id="curves.filter"),
        Binding("l", "toggle_log", "Log-Y", id="curves.log_y"),
        Binding("s", "cycle_smoothing", "Smooth", id="curves.smoothing"),
        Binding("x", "cycle_x", "X axis", id="curves.x_axis"),
        Binding("space", "toggle_select", "Compare", id="curves.select"),
        Binding("p", "pin", "Pin", id="curves.pin"),
        Binding("c", "clear_selection", "Clear compare/pin", id="curves.clear", show=False),
        Binding("e", "toggle_events", "Events", id="curves.events", show=False),
        Binding("n", "new_run", "New run", id="curves.new_run", show=False),
        Binding("S", "stop_run", "Stop run", id="curves.stop_run", show=False),
    ]

    def __init__(
        self,
        workspace: Workspace,
        clock: Callable[[], float] = time.time,
        prefetch: Prefetch | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.workspace = workspace
        self.prefetch = prefetch
        # Metric views (points, smoothing, best) by (run, version, metric, x, smoothing):
        # computed in workers, read on the UI thread, so a redraw does no O(rows) work.
        self._views: OrderedDict[tuple[Any, ...], MetricView | None] = OrderedDict()
        self.clock = clock
        self.state = CurvesState()
        self.infos: dict[str, RunInfo] = {}
        self.series: dict[str, RunSeries] = {}
        self.snapshots: dict[str, SeriesSnapshot] = {}
        self.color_index: dict[str, int] = {}
        self._inflight: set[str] = set()
        self._dirty: set[str] = set()
        self.system: dict[str, dict[str, Any]] = {}  # last system.jsonl row of running runs
        self.drawn_rows: dict[str, int] = {}
        self.on_drawn: Callable[[str, int], None] | None = None  # benchmarks hook in here

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield RunList(clock=self.clock, id="runs")
            with Vertical(id="chart-side"):
                yield Static("", id="curves-header", markup=False)
                yield Input(placeholder="metric regex, Enter to apply, Esc to cancel", id="metric-filter")
                yield LineChart(id="chart")
                yield Static("", id="legend", markup=False)
                yield Static("", id="curves-footer", markup=False)

    def on_mount(self) -> None:
        if self.prefetch is not None:
            self._adopt_prefetch(self.prefetch)
        else:
            self.reload_runs()
        self.redraw()
        self.set_interval(2.0, self._sample_system)

    # ------------------------------------------------------------------ loading
    def _adopt_prefetch(self, pf: Prefetch) -> None:
        """Take the run list and the newest run's rows from a Prefetch started earlier."""

        if pf.done.is_set() and pf.runs is not None:
            # Already read (a cached or small run): draw it in the very first frame.
            first = newest(pf.runs)
            ready = first is not None and first.id in pf.series
            self._runs_listed(RunsListed(pf.runs, pending=first.id if ready else None))
            if first is not None and ready:
                series = pf.series[first.id]
                snap = series.snapshot()
                self._series_refreshed(SeriesRefreshed(first.id, snap, snap.n, False, {}, series))
            return

        def work() -> None:
            pf.listed.wait()
            if pf.runs is None:
                self.post_message(RunsListed(list_runs(self.workspace)))
                return
            first = newest(pf.runs)
            self.post_message(RunsListed(pf.runs, pending=first.id if first else None))
            if first is None:
                return
            pf.done.wait()
            series = pf.series.get(first.id)
            if series is None:  # the prefetch failed; read it the usual way
                series = RunSeries(first.path, cache_dir=self.workspace.cache_dir, run_id=first.id)
                series.refresh()
            snap = series.snapshot()
            self.post_message(SeriesRefreshed(first.id, snap, snap.n, False,
                                              self._precompute(first.id, snap), series))

        self.run_worker(work, thread=True, group="runs", exclusive=True, exit_on_error=False,
                        description="adopt the prefetched runs")

    def _view_key(self, run_id: str, snap: SeriesSnapshot, metric: str) -> tuple[Any, ...]:
        return (run_id, snap.version, metric, self.state.x_axis, self.state.smoothing)

    def _precompute(self, run_id: str, snap: SeriesSnapshot) -> dict[tuple[Any, ...], MetricView | None]:
        """In a worker: the view the pane will ask for next (its metric, or the run's default)."""
        metric = self.state.metric
        if metric is None or not self.state.metric_chosen:
            metric = default_metric(snap.metric_names(), self.infos.get(run_id))
        if metric is None:
            return {}
        info = self.infos.get(run_id)
        key = self._view_key(run_id, snap, metric)
        return {key: metric_view(snap, metric, key[3], key[4], info.directions if info else None)}

    def view(self, run_id: str, snap: SeriesSnapshot, metric: str) -> MetricView | None:
        """A memoised MetricView; computed here (UI thread) only after a key press."""
        key = self._view_key(run_id, snap, metric)
        if key in self._views:
            self._views.move_to_end(key)
            return self._views[key]
        info = self.infos.get(run_id)
        mv = metric_view(snap, metric, key[3], key[4], info.directions if info else None)
        self._remember(key, mv)
        return mv

    def _remember(self, key: tuple[Any, ...], mv: MetricView | None) -> None:
        self._views[key] = mv
        while len(self._views) > 64:
            self._views.popitem(last=False)

    def reload_runs(self) -> None:
        ws = self.workspace

        def work() -> None:
            self.post_message(RunsListed(list_runs(ws)))

        self.run_worker(work, thread=True, group="runs", exclusive=True, exit_on_error=False,
                        description="read run.json files")

    @on(RunsListed)
    def _runs_listed(self, message: RunsListed) -> None:
        self.infos = {r.id: r for r in message.runs}
        for run_id in list(self.series):
            if run_id not in self.infos:
                self.series.pop(run_id)
                self.snapshots.pop(run_id, None)
                self.state.selected.discard(run_id)
                if self.state.pinned == run_id:
                    self.state.pinned = None
        for info in message.runs:
            if info.id not in self.color_index:
                self.color_index[info.id] = len(self.color_index)
        self._sync_list()
        runlist = self.query_one(RunList)
        first = runlist.cursor_run
        if message.pending and message.pending not in self.series:
            self._inflight.add(message.pending)  # the prefetch is reading it
        new = [r for r in runlist.order if r not in self.series and r not in self._inflight]
        for run_id in sorted(new, key=lambda r: r != first):  # the visible run first
            self.series[run_id] = RunSeries(
                self.infos[run_id].path, cache_dir=self.workspace.cache_dir, run_id=run_id
            )
            self.refresh_run(run_id)
        self.redraw()

    def refresh_run(self, run_id: str) -> None:
        series = self.series.get(run_id)
        if series is None:
            return
        if run_id in self._inflight:
            self._dirty.add(run_id)
            return
        self._inflight.add(run_id)

        def work() -> None:
            result = series.refresh()
            snap = series.snapshot()
            self.post_message(SeriesRefreshed(run_id, snap, result.new_rows, result.reset,
                                              self._precompute(run_id, snap)))

        self.run_worker(work, thread=True, group=f"series:{run_id}", exit_on_error=False,
                        description=f"read new rows of {run_id}")

    @on(SeriesRefreshed)
    def _series_refreshed(self, message: SeriesRefreshed) -> None:
        run_id = message.run_id
        self._inflight.discard(run_id)
        if message.series is not None and run_id in self.infos:
            self.series.setdefault(run_id, message.series)
            self._dirty.add(run_id)  # catch up on rows written while it was being read
        if run_id not in self.series:
            return
        for key, mv in message.views.items():
            self._remember(key, mv)
        self.snapshots[run_id] = message.snapshot
        if run_id in self._dirty:
            self._dirty.discard(run_id)
            self.refresh_run(run_id)
        self._sync_list()
        if run_id in self.plotted():
            self.redraw()
            self.drawn_rows[run_id] = message.snapshot.n
            if self.on_drawn is not None:
                self.on_drawn(run_id, message.snapshot.n)

    @on(RunFilesChanged)
    def _files_changed(self, message: RunFilesChanged) -> None:
        if "run" in message.kinds or message.run_id not in self.series:
            self.reload_runs()
        if {"metrics", "events"} & message.kinds:
            self.refresh_run(message.run_id)

    @on(RunsChanged)
    def _runs_changed(self, _: RunsChanged) -> None:
        self.reload_runs()

    # ------------------------------------------------------------------ drawing
    def plotted(self) -> list[str]:
        runlist = self.query_one(RunList)
        return plotted_run_ids(runlist.cursor_run, self.state, runlist.order)

    def _sync_list(self) -> None:
        self.query_one(RunList).sync(
            list(self.infos.values()), self.snapshots, self.state.selected, self.state.pinned, self.system
        )

    def current_names(self) -> list[str]:
        snaps = [self.snapshots[r] for r in self.plotted() if r in self.snapshots]
        return metric_names(snaps, self.state.metric_filter)

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        plotted = self.plotted()
        names = self.current_names()
        cursor = self.query_one(RunList).cursor_run
        if self.state.metric not in names or not self.state.metric_chosen:
            self.state.metric = default_metric(names, self.infos.get(cursor) if cursor else None)
        chart = self.query_one(LineChart)
        header = self.query_one("#curves-header", Static)
        theme = self.app.theme
        styles = [rich_style(s) for s in series_styles(theme)]
        mstyles = {k: rich_style(v) for k, v in marker_styles(theme).items()}
        metric = self.state.metric
        if metric is None:
            chart.set_data([], empty_text=self._empty_text())
            header.update(self._header(names))
            self.query_one("#legend", Static).update("")
            self.query_one("#curves-footer", Static).update("")
            return
        model = build_chart(metric, plotted, self.snapshots, self.infos, self.state,
                            styles, mstyles, self.color_index, view=self.view)
        chart.set_data(model.series, model.markers, log_y=self.state.log_y, x_label=self.state.x_axis)
        header.update(self._header(names))
        legend = self.query_one("#legend", Static)
        from rich.text import Text

        legend.update(Text("\n").join(model.legend) if model.legend else "")
        self._update_footer(plotted)

    def _update_footer(self, plotted: list[str]) -> None:
        chart = self.query_one(LineChart)
        result = chart.last_result
        parts = []
        if result is not None:
            parts.append(f"{result.points_drawn:,} of {result.points_in:,} points (min/max per column)")
            if result.hidden_nonpositive:
                parts.append(f"{result.hidden_nonpositive:,} values ≤ 0 hidden by log-Y")
        malformed = sum(self.snapshots[r].malformed for r in plotted if r in self.snapshots)
        if malformed:
            parts.append(f"⚠ {malformed:,} malformed lines skipped")
        if any(self.snapshots[r].deleted for r in plotted if r in self.snapshots):
            parts.append("⚠ metrics.jsonl deleted")
        text = " · ".join(parts)
        cursor = self.query_one(RunList).cursor_run
        info = self.infos.get(cursor) if cursor else None
        if info is not None and info.status == "failed":
            text = f"failed: {info.error or 'no error recorded'}" + (f" · {text}" if text else "")
        footer = self.query_one("#curves-footer", Static)
        width = footer.size.width or self.size.width
        if width and len(text) > width:
            text = text[: max(1, width - 1)] + "…"
        footer.update(text)

    def restyle(self) -> None:
        """The theme changed: colours baked into cells and the chart must be redone."""
        if self.is_mounted:
            self._sync_list()
            self.redraw()

    def on_resize(self) -> None:
        # Narrow terminals drop the progress column rather than scroll sideways.
        wide = self.size.width >= 110
        extra = self.size.width >= 150  # steps/s, ETA, CPU%, RSS, GPU% columns too
        self.set_class(wide, "-wide")
        self.set_class(extra, "-extra")
        runlist = self.query_one(RunList)
        if wide != runlist.wide or extra != runlist.extra:
            runlist.set_wide(wide, extra)
            self._sync_list()
        self.call_after_refresh(self._update_footer, self.plotted())

    def _header(self, names: list[str]) -> str:
        s = self.state
        if s.metric in names:
            head = f"{s.metric}  [{names.index(s.metric) + 1}/{len(names)}]"
        else:
            head = "no metric" if not s.metric_filter else f"no metric matches /{s.metric_filter}/"
        flags = []
        if s.metric_filter:
            flags.append(f"/{s.metric_filter}/")
        flags.append(f"x:{s.x_axis}")
        if s.log_y:
            flags.append("log-y")
        if s.smoothing:
            flags.append(f"ema {s.smoothing:g}")
        if not s.show_events:
            flags.append("events off")
        return head + "   " + "  ".join(flags)

    def _empty_text(self) -> str:
        if not self.infos:
            return (f"No runs in {self.workspace.runs_dir}. Try `trainledger demo`, or write "
                    "runs/<id>/metrics.jsonl from any script (docs/formats.md).")
        if self.state.metric_filter:
            return f"No metric matches /{self.state.metric_filter}/ (press / then Enter on empty to clear)"
        return "This run has no metrics rows yet."

    @on(DataTable.RowHighlighted)
    def _cursor_moved(self, _: DataTable.RowHighlighted) -> None:
        self.redraw()
        if self.is_mounted:
            self._update_footer(self.plotted())

    # ------------------------------------------------------------------ actions
    def _step_metric(self, delta: int) -> None:
        names = self.current_names()
        if not names:
            return
        i = names.index(self.state.metric) if self.state.metric in names else -delta
        self.state.metric = names[(i + delta) % len(names)]
        self.state.metric_chosen = True
        self.redraw()

    def action_next_metric(self) -> None:
        self._step_metric(1)

    def action_prev_metric(self) -> None:
        self._step_metric(-1)

    def action_toggle_log(self) -> None:
        self.state.log_y = not self.state.log_y
        self.redraw()

    def action_cycle_smoothing(self) -> None:
        i = SMOOTHING.index(self.state.smoothing) if self.state.smoothing in SMOOTHING else 0
        self.state.smoothing = SMOOTHING[(i + 1) % len(SMOOTHING)]
        self.redraw()

    def action_cycle_x(self) -> None:
        self.state.x_axis = X_AXES[(X_AXES.index(self.state.x_axis) + 1) % len(X_AXES)]
        self.redraw()

    def action_toggle_events(self) -> None:
        self.state.show_events = not self.state.show_events
        self.redraw()

    def action_toggle_select(self) -> None:
        run_id = self.query_one(RunList).cursor_run
        if run_id:
            self.state.selected ^= {run_id}
            self._sync_list()
            self.redraw()

    def action_pin(self) -> None:
        run_id = self.query_one(RunList).cursor_run
        if run_id:
            self.state.pinned = None if self.state.pinned == run_id else run_id
            self._sync_list()
            self.redraw()

    def action_clear_selection(self) -> None:
        self.state.selected.clear()
        self.state.pinned = None
        self._sync_list()
        self.redraw()

    def action_filter(self) -> None:
        box = self.query_one("#metric-filter", Input)
        box.value = self.state.metric_filter
        box.add_class("-shown")
        box.focus()

    @on(Input.Submitted, "#metric-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        box = self.query_one("#metric-filter", Input)
        try:
            compile_filter(event.value)
        except ValueError as exc:
            # Keep the box open with the reason on its border; the old filter stays.
            box.border_title = str(exc)
            box.add_class("-invalid")
            self.notify(str(exc), title="Metric filter", severity="error")
            return
        box.border_title = None
        box.remove_class("-invalid")
        self.state.metric_filter = event.value
        self._close_filter()
        self.redraw()

    def _close_filter(self) -> None:
        box = self.query_one("#metric-filter", Input)
        box.remove_class("-shown")
        self.query_one(RunList).focus()

    def key_escape(self) -> None:
        if self.query_one("#metric-filter", Input).has_class("-shown"):
            self._close_filter()
