"""The Curves pane's run list keys: filter (`/`), sort (`o` / `O`), columns (`h`), select shown (`a`).

The logic (what matches, in which order, how a value reads) is console/run_filter.py's;
this mixin keeps the user's choices (a `ListView`, kept for the session) and applies them
to the rows. Metric columns need each listed run's best or last value: a thread worker
reads them (engines/metrics: the series, its cache, `summarize`) for every listed run and
sends them back in one message; a run whose metrics change is read again, a few at a time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from textual.message import Message
from textual.widgets import DataTable, Input, Static

from trainledger.console.run_filter import (
    COLUMN_MAX,
    COLUMN_MIN,
    Column,
    ListView,
    config_keys,
    config_value,
    filter_runs,
    flatten,
    format_value,
    parse_query,
    sort_runs,
)
from trainledger.console.screens.columns import ColumnsScreen
from trainledger.console.text import plain
from trainledger.console.widgets.runlist import RunList
from trainledger.engines.metrics.analysis import direction_for, summarize
from trainledger.engines.metrics.series import RunSeries
from trainledger.engines.workspace import RunInfo

if TYPE_CHECKING:
    from trainledger.console.panes.curves import CurvesPane

    _Base = CurvesPane
else:
    _Base = object

CHART_MIN = 36  # the chart keeps this many cells however many columns are chosen
METRIC_REREAD_S = 3.0  # a live run's metric columns are read again at most this often


class MetricValuesRead(Message):
    """A worker read the chosen metrics of some runs: run id -> metric -> (last, best)."""

    def __init__(self, values: dict[str, dict[str, tuple[float | None, float | None]]]) -> None:
        super().__init__()
        self.values = values


def _num(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


class RunListKeys(_Base):
    """Mixed into CurvesPane: what the run list shows and the keys that choose it."""

    def _init_list_view(self) -> None:
        self.list_view = ListView()
        self.metric_values: dict[str, dict[str, tuple[float | None, float | None]]] = {}
        self._metric_stale: set[str] = set()  # runs whose metric columns must be read again
        self._metric_reading = False
        self._filter_before = ""  # the filter when `/` was pressed (Esc goes back to it)
        self._flat: dict[str, tuple[RunInfo, dict[str, Any]]] = {}

    # ------------------------------------------------------------------ rows
    def listed_runs(self) -> list[RunInfo]:
        """The runs the list shows: filtered, archived hidden unless `v`, sorted."""
        lv = self.list_view
        shown = filter_runs(self.infos.values(), lv.query, lv.show_archived)
        if lv.sort == "started":
            return sort_runs(shown, None, lv.reverse)
        return sort_runs(shown, lambda info: self.sort_value(info, lv.sort), self._reverse())

    def _reverse(self) -> bool:
        """A metric with a direction sorts best first; every other column ascending."""
        lv = self.list_view
        if lv.sort.startswith("metric:"):
            metric = lv.sort.split(":", 1)[1]
            if self._direction(metric) == "max":
                return not lv.reverse
        return lv.reverse

    def _direction(self, metric: str) -> str | None:
        declared: dict[str, str] = {}
        for info in self.infos.values():
            if metric in info.directions:
                declared[metric] = info.directions[metric]
                break
        return direction_for(metric, declared)

    def sort_value(self, info: RunInfo, sort: str) -> Any:
        if sort == "run":
            return info.label
        if sort == "status":
            return info.status
        if sort == "model":
            return info.model
        if sort == "tags":
            return " ".join(info.tags) or None
        if sort == "progress":
            brief = self.briefs.get(info.id)
            return brief.step if brief is not None and brief.rows and math.isfinite(brief.step) else None
        kind, _, key = sort.partition(":")
        return self.column_value(info, Column(kind, key))

    def column_value(self, info: RunInfo, col: Column) -> Any:
        if col.kind == "config":
            flat = self._flat.get(info.id)
            if flat is None or flat[0] is not info:
                value = config_value(info, col.key)
                return value
            return flat[1].get(col.key)
        last_best = self.metric_values.get(info.id, {}).get(col.key)
        if last_best is None:
            return None
        last, best = last_best
        return best if best is not None else last

    def apply_list_view(self) -> None:
        """Columns and rows again, after the user changed a choice."""
        self._fit_columns(self.size.width or self.app.size.width)
        self._sync_list()
        self._update_list_info()
        self.want_files()
        self.redraw()

    def _headers(self) -> dict[str, str]:
        heads = {}
        for col in self.list_view.columns:
            if col.kind == "metric":
                arrow = {"min": "↓", "max": "↑"}.get(self._direction(col.key) or "", "")
                heads[col.id] = col.key + arrow
            else:
                heads[col.id] = col.key
        return heads

    def _widths(self) -> dict[str, int]:
        """A chosen column is as wide as its header or its widest value (6 to 16 cells)."""
        out = {}
        for col in self.list_view.columns:
            head = self._headers().get(col.id, col.key)
            if col.kind == "metric":
                widest = 9  # "0.0001235", "1.235e+04": 4 significant digits
            else:
                widest = max((len(format_value(self.column_value(i, col))) for i in self.infos.values()), default=0)
            out[col.id] = max(COLUMN_MIN, min(COLUMN_MAX, max(len(head), widest)))
        return out

    def _update_list_info(self) -> None:
        """One line over the list: how many runs it shows, the filter and the sort (when not the default)."""
        lv = self.list_view
        total = len(self.infos)
        shown = len(self.query_one(RunList).order)
        archived = sum(1 for r in self.infos.values() if r.archived)
        parts = []
        if shown != total:
            parts.append(f"{shown} of {total}")
        if lv.query.source.strip():
            parts.append(f"/{lv.query.source.strip()}")
        if lv.sort != "started" or lv.reverse:
            parts.append(lv.sort_label())
        if archived and not lv.show_archived:
            parts.append(f"{archived} archived hidden")
        elif lv.show_archived and archived:
            parts.append(f"⊟ {archived} archived")
        if parts and self.state.selected:  # only on a line already shown: a space press adds no line
            parts.append(f"✓ {len(self.state.selected)} compared")
        line = self.query_one("#list-info", Static)
        line.update(plain(" · ".join(parts)))
        line.set_class(bool(parts), "-shown")

    # ------------------------------------------------------------------ /: the run filter
    def open_run_filter(self) -> None:
        box = self.query_one("#run-filter", Input)
        self._filter_before = self.list_view.query.source
        box.value = self.list_view.query.source
        box.add_class("-shown")
        box.can_focus = True
        box.focus()

    # Named handlers, not @on: a plain mixin's decorated handlers are not collected by Textual.
    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "run-filter":
            return
        if parse_query(event.value) != self.list_view.query:
            self.list_view.query = parse_query(event.value)  # 300 runs filter as fast as one types
            self._sync_list()
            self._update_list_info()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "run-filter":
            return
        event.stop()
        self.list_view.query = parse_query(event.value)
        self._close_run_filter()

    def _close_run_filter(self, restore: bool = False) -> None:
        box = self.query_one("#run-filter", Input)
        if restore:
            self.list_view.query = parse_query(self._filter_before)
        box.remove_class("-shown")
        box.can_focus = False
        self.query_one(RunList).focus()
        self.apply_list_view()

    # ------------------------------------------------------------------ o / O: sort
    def action_cycle_sort(self) -> None:
        self.list_view.next_sort()
        self.apply_list_view()  # the line over the list says the sort

    def action_reverse_sort(self) -> None:
        self.list_view.reverse = not self.list_view.reverse
        self.apply_list_view()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a column's header sorts by it; a second click reverses."""
        key = str(event.column_key.value)
        if key not in self.list_view.sort_ids():
            return
        event.stop()
        if self.list_view.sort == key:
            self.list_view.reverse = not self.list_view.reverse
        else:
            self.list_view.sort, self.list_view.reverse = key, False
        self.apply_list_view()

    # ------------------------------------------------------------------ a: compare what the filter shows
    def action_select_shown(self) -> None:
        shown = set(self.query_one(RunList).order)
        if not shown:
            return
        if shown <= self.state.selected:
            self.state.selected -= shown
        else:
            self.state.selected |= shown
        self._sync_list()
        self._update_list_info()  # "✓ N compared"
        self.want_files()
        self.redraw()

    # ------------------------------------------------------------------ h: columns
    def available_columns(self) -> list[Column]:
        cols = [Column("config", k) for k in config_keys(self.infos.values())]
        metrics: set[str] = set()
        for info in self.infos.values():
            metrics.update(info.directions)
            if info.primary_metric:
                metrics.add(info.primary_metric)
        for snap in self.snapshots.values():
            metrics.update(snap.metric_names())
        for values in self.metric_values.values():
            metrics.update(values)
        return cols + [Column("metric", m) for m in sorted(metrics)]

    def action_pick_columns(self) -> None:
        directions = {}
        for col in self.available_columns():
            if col.kind == "metric" and (d := self._direction(col.key)):
                directions[col.key] = d

        def chosen(cols: list[Column] | None) -> None:
            if cols is None:
                return
            self.list_view.columns = cols
            if self.list_view.sort not in self.list_view.sort_ids():
                self.list_view.sort, self.list_view.reverse = "started", False
            self._metric_stale = set(self.infos)
            self.apply_list_view()
            self.read_metric_values()

        self.app.push_screen(ColumnsScreen(self.available_columns(), self.list_view.columns, directions), chosen)

    # ------------------------------------------------------------------ metric column values
    def read_metric_values(self) -> None:
        """Read the chosen metrics of the stale runs in a worker (one at a time)."""
        metrics = [c.key for c in self.list_view.columns if c.kind == "metric"]
        if not metrics or self._metric_reading or not self._metric_stale:
            return
        todo = {r: self.infos[r] for r in self._metric_stale if r in self.infos}
        self._metric_stale = set()
        if not todo:
            return
        self._metric_reading = True
        cache_dir = self.workspace.cache_dir

        def work() -> None:
            out: dict[str, dict[str, tuple[float | None, float | None]]] = {}
            try:
                for run_id, info in todo.items():
                    try:
                        series = RunSeries(info.path, cache_dir=cache_dir, run_id=run_id)
                        series.refresh()
                        snap = series.snapshot()
                    except Exception:  # noqa: BLE001 - one unreadable run leaves its cells empty
                        out[run_id] = {}
                        continue
                    row: dict[str, tuple[float | None, float | None]] = {}
                    for m in metrics:
                        s = summarize(snap, m, info.directions)
                        if s is not None:
                            row[m] = (_num(s.last), _num(s.best))
                    out[run_id] = row
            finally:
                self.post_message(MetricValuesRead(out))

        self.run_worker(work, thread=True, group="metric-columns", exit_on_error=False,
                        description=f"read the metric columns of {len(todo)} runs")  # fmt: skip

    def on_metric_values_read(self, message: MetricValuesRead) -> None:
        self._metric_reading = False
        self.metric_values.update(message.values)
        self.query_one(RunList).values_changed()
        self._sync_list()
        if self._metric_stale:
            self.set_timer(METRIC_REREAD_S, self.read_metric_values)

    def metrics_changed(self, run_id: str) -> None:
        """A run's metrics.jsonl grew: its metric columns are read again (soon, batched)."""
        if any(c.kind == "metric" for c in self.list_view.columns):
            first = not self._metric_stale
            self._metric_stale.add(run_id)
            if first and not self._metric_reading:
                self.set_timer(METRIC_REREAD_S, self.read_metric_values)

    def runs_listed(self) -> None:
        """New runs (or a re-read list): new runs need their metric columns, configs re-flattened."""
        for run_id, info in self.infos.items():
            if run_id not in self._flat or self._flat[run_id][0] is not info:
                self._flat[run_id] = (info, flatten(info.config) if isinstance(info.config, dict) else {})
            if run_id not in self.metric_values:
                self._metric_stale.add(run_id)
        for run_id in [r for r in self._flat if r not in self.infos]:
            self._flat.pop(run_id)
            self.metric_values.pop(run_id, None)
        if self.list_view.columns:  # new values may widen a chosen column
            self._fit_columns(self.size.width or self.app.size.width)
        self.read_metric_values()

