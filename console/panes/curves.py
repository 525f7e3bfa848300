"""The Curves pane: every run's metrics, live, with the keys of a terminal chart viewer.

Files are read in thread workers (curves_loader.py: what is read, when, by at most two
workers); the results come back as messages and the pane only renders. Every string
from a run folder or the user reaches the screen as `plain` Text.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from rich.text import Text
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
from trainledger.console.messages import RunFilesChanged, RunsChanged
from trainledger.console.panes.curves_chart import CHART_BINDINGS, ChartKeys
from trainledger.console.panes.curves_list import CHART_MIN, RunListKeys
from trainledger.console.panes.curves_loader import CurvesLoader
from trainledger.console.panes.run_control import RunControl
from trainledger.console.panes.run_tidy import RunTidy
from trainledger.console.prefetch import Prefetch
from trainledger.console.styles import rich_style
from trainledger.console.text import clean, plain, plain_lines
from trainledger.console.widgets.chart import LineChart
from trainledger.console.widgets.runlist import (
    BORDER,
    COLUMNS,
    EXTRA_COLUMNS,
    NAME_WIDTH,
    PAD,
    SCROLLBAR,
    RunList,
    fixed_width,
)
from trainledger.engines.metrics.series import MAX_METRICS
from trainledger.engines.workspace import RunInfo, Workspace
from trainledger.themes import marker_styles, series_styles


class CurvesPane(ChartKeys, RunTidy, RunListKeys, RunControl, CurvesLoader, Widget):
    """Runs on the left, the chart of one metric for the chosen runs on the right."""

    WANTS = (RunFilesChanged, RunsChanged)  # the watcher's messages this pane is sent

    DEFAULT_CSS = """
    CurvesPane { height: 1fr; }
    CurvesPane > Horizontal { height: 1fr; }
    CurvesPane #list-side { width: 32; height: 1fr; }
    CurvesPane RunList { width: 1fr; border-right: vkey $panel; }
    CurvesPane #run-filter { display: none; height: 3; }
    CurvesPane #run-filter.-shown { display: block; }
    CurvesPane #list-info { display: none; height: 1; color: $text-muted; }
    CurvesPane #list-info.-shown { display: block; }
    CurvesPane #chart-side { width: 1fr; padding: 0 0 0 1; }
    CurvesPane #curves-header { height: 1; }
    CurvesPane #curves-empty { display: none; height: auto; padding: 1 0; }
    CurvesPane #curves-empty.-shown { display: block; }
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
        Binding("m", "metric_filter", "Metric filter", id="curves.metric_filter", show=False),
        Binding("l", "toggle_log", "Log-Y", id="curves.log_y"),
        Binding("s", "cycle_smoothing", "Smooth", id="curves.smoothing"),
        Binding("x", "cycle_x", "X axis", id="curves.x_axis"),
        Binding("space", "toggle_select", "Compare", id="curves.select"),
        Binding("p", "pin", "Pin", id="curves.pin"),
        Binding("c", "clear_selection", "Clear compare/pin", id="curves.clear", show=False),
        Binding("e", "toggle_events", "Events", id="curves.events", show=False),
        Binding("n", "new_run", "New run", id="curves.new_run", show=False),
        Binding("S", "stop_run", "Stop run", id="curves.stop_run", show=False),
        Binding("enter", "open_run", "Open the run", id="curves.open_run"),
        Binding("a", "select_shown", "Compare all shown", id="curves.select_shown", show=False),
        Binding("h", "pick_columns", "Columns", id="curves.columns"),
        Binding("o", "cycle_sort", "Sort", id="curves.sort", show=False),
        Binding("O", "reverse_sort", "Reverse sort", id="curves.sort_reverse", show=False),
        Binding("T", "edit_tags", "Tags/note", id="curves.tags", show=False),
        Binding("A", "toggle_archive", "Archive", id="curves.archive", show=False),
        Binding("v", "toggle_archived", "Show archived", id="curves.show_archived", show=False),
        Binding("d,delete", "delete_run", "Delete run", id="curves.delete", show=False),
        *CHART_BINDINGS,
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
        self.clock = clock
        self.state = CurvesState()
        self.infos: dict[str, RunInfo] = {}
        self.color_index: dict[str, int] = {}
        self._init_loader()
        self._init_list_view()
        self.system: dict[str, dict[str, Any]] = {}  # last system.jsonl row of running runs
        self.drawn_rows: dict[str, int] = {}
        self.on_drawn: Callable[[str, int], None] | None = None  # benchmarks hook in here

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="list-side"):
                box = Input(placeholder="filter: text model:X status:X tag:X", id="run-filter")
                box.can_focus = False  # until `/` opens it: the list is the pane's first focus
                yield box
                yield Static("", id="list-info", markup=False)
                yield RunList(clock=self.clock, id="runs")
            with Vertical(id="chart-side"):
                yield Static("", id="curves-header", markup=False)
                yield Static("", id="curves-empty", markup=False)
                yield Input(placeholder="metric regex, Enter to apply, Esc to cancel", id="metric-filter")
                yield LineChart(id="chart")
                yield Static("", id="legend", markup=False)
                yield Static("", id="curves-footer", markup=False)

    def on_mount(self) -> None:
        # The pane spans the terminal: choose the columns now, so the first rows (3,000 of
        # them, maybe) are added once, not again at the first resize.
        self._fit_columns(self.app.size.width)
        if self.prefetch is not None:
            self._adopt_prefetch(self.prefetch)
        else:
            self.reload_runs()
        self.redraw()
        self.call_after_refresh(self.redraw)  # is_mounted is False until on_mount returns: draw again then
        self.set_interval(2.0, self._sample_system)

    # ------------------------------------------------------------------ drawing
    def plotted(self) -> list[str]:
        runlist = self.query_one(RunList)
        return plotted_run_ids(runlist.cursor_run, self.state, runlist.order)

    def _sync_list(self) -> None:
        runlist = self.query_one(RunList)
        runlist.value_of = self.column_value
        runlist.sync(self.listed_runs(), self.briefs, self.state.selected, self.state.pinned, self.system,
                     ordered=True)  # fmt: skip

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
        self._show_how_to_start()
        if metric is None:
            chart.set_data([], empty_text=self._empty_text())
            header.update(plain(self._header(names)))
            self.query_one("#legend", Static).update("")
            self._update_footer(plotted)
            return
        model = build_chart(metric, plotted, self.snapshots, self.infos, self.state,
                            styles, mstyles, self.color_index, view=self.view)
        chart.set_data(model.series, model.markers, log_y=self.state.log_y, x_label=self.state.x_axis)
        for run_id in plotted:  # what the chart now holds, for tests and benchmarks
            n = self.snapshots[run_id].n if run_id in self.snapshots else None
            if n is not None and self.drawn_rows.get(run_id) != n:
                self.drawn_rows[run_id] = n
                if self.on_drawn is not None:
                    self.on_drawn(run_id, n)
        header.update(plain(self._header(names)))
        legend = self.query_one("#legend", Static)
        legend.update(Text("\n").join(model.legend) if model.legend else "")
        self._update_footer(plotted)

    def _update_footer(self, plotted: list[str]) -> None:
        chart = self.query_one(LineChart)
        result = chart.last_result
        parts = []
        if result is not None and not self.grid_shown:  # the grid's cells say their own counts
            parts.append(f"{result.points_drawn:,} of {result.points_in:,} points (min/max per column)")
            if result.hidden_nonpositive:
                parts.append(f"{result.hidden_nonpositive:,} values ≤ 0 hidden by log-Y")
        malformed = sum(self.snapshots[r].malformed for r in plotted if r in self.snapshots)
        if malformed:
            parts.append(f"⚠ {malformed:,} malformed lines skipped")
        if any(self.snapshots[r].deleted for r in plotted if r in self.snapshots):
            parts.append("⚠ metrics.jsonl deleted")
        ignored = max((self.snapshots[r].ignored_metrics for r in plotted if r in self.snapshots), default=0)
        if ignored:  # first: a narrow footer cuts from the end
            parts.insert(0, f"⚠ metric cap {MAX_METRICS:,} reached: {ignored:,} names ignored")
        cursor = self.query_one(RunList).cursor_run
        info = self.infos.get(cursor) if cursor else None
        snap = self.snapshots.get(cursor) if cursor else None
        for problem in (info.problem if info else None, snap.problem if snap else None):
            if problem:
                parts.insert(0, f"⚠ {problem}")
        text = " · ".join(parts)
        if info is not None and info.status == "failed":
            text = f"failed: {info.error or 'no error recorded'}" + (f" · {text}" if text else "")
        text = clean(text)  # error texts and problems come from files
        footer = self.query_one("#curves-footer", Static)
        width = footer.size.width or self.size.width
        if width and len(text) > width:
            text = text[: max(1, width - 1)] + "…"
        footer.update(plain(text))

    def summary(self) -> str:
        """The run list and the chart's metric, as text (the headless demo prints it)."""
        lines = [f"runs: {len(self.infos)}"]
        for run_id, info in sorted(self.infos.items()):
            snap = self.snapshots.get(run_id)  # only plotted runs are read in full
            rows = f"{snap.n} rows" if snap else "not read (not plotted)"
            lines.append(f"  {clean(run_id)}  {clean(info.status)}  {rows}")
        if self.state.metric:
            lines.append(f"chart: {clean(self.state.metric)}")
        return "\n".join(lines)

    def restyle(self) -> None:
        """The theme changed: colours baked into cells and the chart must be redone."""
        if self.is_mounted:  # once the new theme's variables are in place (after its CSS refresh)
            self.call_after_refresh(self._restyle_now)

    def _restyle_now(self) -> None:
        self.query_one(RunList).restyle()
        self._sync_list()
        self.redraw()

    def on_resize(self) -> None:
        if self._fit_columns(self.size.width):
            self._sync_list()
        self.want_files()  # the rows on screen are known now
        self.call_after_refresh(lambda: self._update_footer(self.plotted()))  # the runs plotted then

    def _fit_columns(self, width: int) -> bool:
        """Narrow terminals drop the progress column rather than scroll sideways.

        The list is as wide as its columns: the run column's floor, status whole (it is never
        the one cut), then progress and the extra figures where they fit, then the columns
        chosen with `h` (past what leaves the chart CHART_MIN cells, the list scrolls sideways).
        """
        wide = width >= 110
        extra = width >= 150  # steps/s, ETA, CPU%, RSS, GPU% columns too
        self.set_class(wide, "-wide")
        self.set_class(extra, "-extra")
        base = COLUMNS + EXTRA_COLUMNS if extra else (COLUMNS if wide else COLUMNS[:2])
        list_width = NAME_WIDTH + 2 + PAD + fixed_width(base) + SCROLLBAR + BORDER
        runlist = self.query_one(RunList)
        changed = runlist.configure(wide, extra, list_width, self.list_view.columns, self._headers(),
                                    self._widths())  # fmt: skip
        total = list_width + runlist.user_width
        if width:
            total = min(total, max(list_width, width - CHART_MIN))
        self.query_one("#list-side").styles.width = total
        return changed

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

    def _show_how_to_start(self) -> None:
        """An empty workspace: the ways to start a run, over the (empty) chart."""
        box = self.query_one("#curves-empty", Static)
        empty = not self.infos
        if empty:
            box.update(plain_lines(
                "No runs in this workspace yet. To start one:\n"
                "  n                        the new-run form\n"
                "  trainledger train MODEL  in a shell\n"
                "  trainledger.log(...)     in your script\n"
                "  trainledger demo         a live demo run\n"
                "(docs/formats.md: the run folder's files)"))  # fmt: skip
        box.set_class(empty, "-shown")

    def _empty_text(self) -> str:
        if not self.infos:
            return "No runs yet: press n to start one"
        if not self.query_one(RunList).order:
            if self.list_view.query.source.strip():
                return clean(f"No run matches the filter /{self.list_view.query.source.strip()}/ "
                             "(press / then Enter on empty to clear it)")
            return clean(f"All {len(self.infos)} runs are archived: press v to show them")
        if self.state.metric_filter:
            return clean(f"No metric matches /{self.state.metric_filter}/ (press / then Enter on empty to clear)")
        cursor = self.query_one(RunList).cursor_run
        snap = self.snapshots.get(cursor) if cursor else None
        if snap is not None and snap.problem and snap.n == 0:
            return clean(f"⚠ {snap.problem}")
        if cursor is not None and snap is None:
            return "Reading this run…"
        return "This run has no metrics rows yet."

    @on(DataTable.RowHighlighted)
    def _cursor_moved(self, _: DataTable.RowHighlighted) -> None:
        self.want_files()  # the new cursor run's series first
        self.redraw()
        if self.is_mounted:
            self._update_footer(self.plotted())

    # ------------------------------------------------------------------ the Versions pane's calls
    def show_registered(self, run_ids: frozenset[str]) -> None:
        """Mark the runs that have a registered version (the Versions pane reads the registry)."""
        self.query_one(RunList).set_registered(run_ids)
        self._sync_list()

    def show_run(self, run_id: str) -> bool:
        """Put the cursor on `run_id` (enter on a version); False if the run is not listed."""
        runlist = self.query_one(RunList)
        if run_id not in runlist.order:
            return False
        runlist.move_cursor(row=runlist.order.index(run_id))
        runlist.focus()
        return True

    @on(DataTable.RowSelected, "#runs")
    def _run_chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_run()

    # ------------------------------------------------------------------ actions
    def action_open_run(self) -> None:
        """The cursor run's report, its claims verified against the files (a worker does it)."""
        run_id = self.query_one(RunList).cursor_run
        if run_id is None:
            return
        from trainledger.console.screens.run_report import RunReportScreen

        self.app.push_screen(RunReportScreen(self.workspace, run_id))

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
            self._update_row(run_id)
            self._update_list_info()
            self.want_files()
            self.redraw()

    def action_pin(self) -> None:
        run_id = self.query_one(RunList).cursor_run
        if run_id:
            before = self.state.pinned
            self.state.pinned = None if self.state.pinned == run_id else run_id
            for changed in {before, run_id} - {None}:
                self._update_row(changed)  # type: ignore[arg-type]
            self.want_files()
            self.redraw()

    def action_clear_selection(self) -> None:
        self.state.selected.clear()
        self.state.pinned = None
        self._sync_list()
        self._update_list_info()
        self.want_files()
        self.redraw()

    def action_filter(self) -> None:
        """`/`: the run filter when the list has the focus, the metric filter on the chart side."""
        focused = self.app.focused
        chart_side = self.query_one("#chart-side")
        if focused is not None and focused is not chart_side and chart_side in focused.ancestors:
            self.action_metric_filter()
        else:
            self.open_run_filter()

    def action_metric_filter(self) -> None:
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
            # The reason quotes what was typed: Text, never markup ("[/a" is no tag).
            box.border_title = plain(str(exc))
            box.add_class("-invalid")
            self.notify(clean(str(exc)), title="Metric filter", severity="error", markup=False)
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
        elif self.query_one("#run-filter", Input).has_class("-shown"):
            self._close_run_filter(restore=True)
