"""What the Curves pane reads, and when: the run list at once, series only where they show.

A workspace of thousands of runs must list in a second. The run list comes from
run.json alone (one worker); a run's whole series is parsed only while it is plotted
(the cursor's run first), and one run no longer plotted is kept so going back is
instant; the other runs on screen get a `RunBrief` (their progress, from the ends of
metrics.jsonl), read in batches as they scroll into view. At most MAX_WORKERS reads
run at once, whatever the number of runs, and each result updates its row only.
Refreshes of one run never overlap: a change that arrives while one is in flight marks
the run dirty and one more refresh follows.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from textual.message import Message
from textual.worker import Worker, WorkerState

from trainledger.console.curves_view import default_metric
from trainledger.console.messages import RunFilesChanged, RunsChanged, RunsListed, SeriesRefreshed
from trainledger.console.prefetch import Prefetch, newest
from trainledger.console.text import notify_plain
from trainledger.console.widgets.runlist import RunList
from trainledger.engines.metrics.brief import RunBrief, brief_of, read_brief
from trainledger.engines.metrics.series import RunSeries, SeriesSnapshot
from trainledger.engines.metrics.view import MetricView, metric_view
from trainledger.engines.workspace import list_runs

if TYPE_CHECKING:
    from trainledger.console.panes.curves import CurvesPane

    _Base = CurvesPane
else:
    _Base = object

MAX_WORKERS = 2  # reads in flight at once, for any number of runs
BRIEF_BATCH = 16  # runs briefed by one worker
KEEP_SERIES = 1  # series kept for runs no longer plotted
MAX_VIEWS = 64
# With more runs than this compared, their series arriving one by one redraw the chart at most
# every REDRAW_EVERY_S (each redraw draws every compared run: 300 of them after `a`).
BATCH_REDRAW_OVER = 12
REDRAW_EVERY_S = 0.25


class BriefsRead(Message):
    """A worker read the progress of a few runs (run id -> brief)."""

    def __init__(self, briefs: dict[str, RunBrief]) -> None:
        super().__init__()
        self.briefs = briefs


class CurvesLoader(_Base):
    """Mixed into CurvesPane: the reading side (workers, their order, their results)."""

    def _init_loader(self) -> None:
        self.series: dict[str, RunSeries] = {}
        self.snapshots: dict[str, SeriesSnapshot] = {}
        self.briefs: dict[str, RunBrief] = {}
        self._inflight: set[str] = set()  # series being read (by a slot or the prefetch)
        self.read_errors: dict[str, str] = {}  # run id -> why its last read failed
        self._dirty: set[str] = set()
        self._series_queue: OrderedDict[str, None] = OrderedDict()
        self._brief_queue: OrderedDict[str, None] = OrderedDict()
        self._briefing: set[str] = set()
        self._slots: set[Worker[None]] = set()  # our reading workers not yet finished
        self._recent: list[str] = []  # runs no longer plotted whose series are kept
        # Metric views (points, smoothing, best) by (run, version, metric, x, smoothing):
        # computed in workers, read on the UI thread, so a redraw does no O(rows) work.
        self._views: OrderedDict[tuple[Any, ...], MetricView | None] = OrderedDict()
        self._redraw_pending = False

    # ------------------------------------------------------------------ the run list
    def _adopt_prefetch(self, pf: Prefetch) -> None:
        """Take the run list and the newest run's rows from a Prefetch started earlier."""
        if pf.done.is_set() and pf.runs is not None:
            # Already read (a cached or small run): draw it in the very first frame.
            first = newest(pf.runs)
            ready = first is not None and first.id in pf.series
            self.on_runs_listed(RunsListed(pf.runs, pending=first.id if ready else None))
            if first is not None and ready:
                series = pf.series[first.id]
                snap = series.snapshot()
                self.on_series_refreshed(SeriesRefreshed(first.id, snap, snap.n, False, {}, series))
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

    def reload_runs(self) -> None:
        ws = self.workspace

        def work() -> None:
            self.post_message(RunsListed(list_runs(ws)))

        self.run_worker(work, thread=True, group="runs", exclusive=True, exit_on_error=False,
                        description="read run.json files")

    def on_runs_listed(self, message: RunsListed) -> None:
        self.infos = {r.id: r for r in message.runs}
        for store in (self.series, self.snapshots, self.briefs):
            for run_id in [r for r in store if r not in self.infos]:
                store.pop(run_id)
        for run_id in list(self.state.selected):
            if run_id not in self.infos:
                self.state.selected.discard(run_id)
        if self.state.pinned not in self.infos:
            self.state.pinned = None
        for info in message.runs:
            if info.id not in self.color_index:
                self.color_index[info.id] = len(self.color_index)
        self.runs_listed()  # configs flattened, metric columns of new runs queued
        self._sync_list()
        self._update_list_info()
        if message.pending and message.pending not in self.series:
            self._inflight.add(message.pending)  # the prefetch is reading it
        self.want_files()
        self.redraw()

    # ------------------------------------------------------------------ what to read
    def want_files(self) -> None:
        """Queue what the screen needs: series of the plotted runs, briefs of visible rows."""
        if not self.is_mounted:
            return
        plotted = self.plotted()
        for run_id in plotted:
            if run_id not in self.snapshots and run_id in self.infos:
                self.refresh_run(run_id)
        for run_id in self._recent:
            if run_id in plotted:
                self._recent.remove(run_id)
        for run_id in [r for r in self.series if r not in plotted and r not in self._recent]:
            self._recent.append(run_id)
        for run_id in self._recent[: max(0, len(self._recent) - KEEP_SERIES)]:
            if run_id not in self._inflight:  # memory follows what is on screen
                self._recent.remove(run_id)
                self.series.pop(run_id, None)
                self.snapshots.pop(run_id, None)
                self._series_queue.pop(run_id, None)
                self._dirty.discard(run_id)
        for run_id in self.query_one(RunList).visible_runs():
            if run_id not in self.briefs and run_id not in self.series and run_id not in self._briefing:
                self._brief_queue[run_id] = None
        self._pump()

    def refresh_run(self, run_id: str) -> None:
        """Read the new rows of a plotted run (queued; never two reads of one run at once)."""
        if run_id not in self.infos:
            return
        if run_id in self._inflight:
            self._dirty.add(run_id)
            return
        self._series_queue[run_id] = None
        cursor = self.query_one(RunList).cursor_run
        if run_id == cursor:
            self._series_queue.move_to_end(run_id, last=False)  # the visible chart first
        self._pump()

    def _pump(self) -> None:
        while len(self._slots) < MAX_WORKERS and (self._series_queue or self._brief_queue):
            if self._series_queue:
                run_id, _ = self._series_queue.popitem(last=False)
                self._start_series(run_id)
            else:
                batch = []
                while self._brief_queue and len(batch) < BRIEF_BATCH:
                    batch.append(self._brief_queue.popitem(last=False)[0])
                self._start_briefs(batch)

    def _start_series(self, run_id: str) -> None:
        series = self.series.get(run_id)
        if series is None:
            info = self.infos[run_id]
            series = self.series[run_id] = RunSeries(
                info.path, cache_dir=self.workspace.cache_dir, run_id=run_id
            )
        self._inflight.add(run_id)

        def work() -> None:
            new_rows, reset, views, error = 0, False, {}, None
            try:
                result = series.refresh()
                new_rows, reset = result.new_rows, result.reset
                views = self._precompute(run_id, series.snapshot())
            except Exception as exc:  # noqa: BLE001 - the run must never be left in flight
                error = f"{type(exc).__name__}: {exc}"
            finally:  # whatever happened: the run leaves flight and its next change reads again
                self.post_message(SeriesRefreshed(run_id, series.snapshot(), new_rows, reset, views,
                                                  error=error))  # fmt: skip

        self._slots.add(self.run_worker(work, thread=True, group=f"series:{run_id}", exit_on_error=False,
                                        description=f"read new rows of {run_id}"))  # fmt: skip

    def _start_briefs(self, batch: list[str]) -> None:
        paths = {run_id: self.infos[run_id].path for run_id in batch if run_id in self.infos}
        self._briefing.update(paths)

        def work() -> None:
            out: dict[str, RunBrief] = {}
            try:
                for run_id, path in paths.items():
                    out[run_id] = read_brief(path)
            finally:
                self.post_message(BriefsRead(out))

        self._slots.add(self.run_worker(work, thread=True, group="briefs", exit_on_error=False,
                                        description=f"read the progress of {len(paths)} runs"))  # fmt: skip

    # ------------------------------------------------------------------ results
    def on_series_refreshed(self, message: SeriesRefreshed) -> None:
        run_id = message.run_id
        self._inflight.discard(run_id)
        self._read_failed(run_id, message.error)
        if message.series is not None and run_id in self.infos:
            self.series.setdefault(run_id, message.series)
            self._dirty.add(run_id)  # catch up on rows written while it was being read
        if run_id in self.series:
            for key, mv in message.views.items():
                self._remember(key, mv)
            self.snapshots[run_id] = message.snapshot
            self.briefs[run_id] = brief_of(message.snapshot)
            self._update_row(run_id)
            if run_id in self._dirty:
                self._dirty.discard(run_id)
                self.refresh_run(run_id)
            plotted = self.plotted()
            if run_id in plotted:
                if len(plotted) <= BATCH_REDRAW_OVER:
                    self.redraw()
                elif not self._redraw_pending:  # many runs compared (`a`): one redraw for a burst
                    self._redraw_pending = True
                    self.set_timer(REDRAW_EVERY_S, self._batched_redraw)
        self._pump()

    def _batched_redraw(self) -> None:
        self._redraw_pending = False
        self.redraw()

    def _read_failed(self, run_id: str, error: str | None) -> None:
        """Say a failed read once (what failed, for which run); a good read clears it."""
        if error is None:
            self.read_errors.pop(run_id, None)
            return
        if self.read_errors.get(run_id) != error:
            notify_plain(self, f"reading run {run_id} failed: {error}\nit is read again on its next change",
                         title="Curves", severity="error", timeout=10)  # fmt: skip
        self.read_errors[run_id] = error

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A slot is free once its worker has ended (not when its message arrived)."""
        if event.worker in self._slots and event.state in (
            WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED
        ):
            self._slots.discard(event.worker)
            self._pump()

    def on_briefs_read(self, message: BriefsRead) -> None:
        self._briefing.difference_update(message.briefs)
        for run_id, brief in message.briefs.items():
            if run_id in self.infos and run_id not in self.series:
                self.briefs[run_id] = brief
                self._update_row(run_id)
        self._pump()

    def _update_row(self, run_id: str) -> None:
        info = self.infos.get(run_id)
        if info is not None:
            self.query_one(RunList).update_run(info, self.briefs.get(run_id), self.state.selected,
                                               self.state.pinned, self.system)  # fmt: skip

    def on_run_files_changed(self, message: RunFilesChanged) -> None:
        run_id = message.run_id
        if "run" in message.kinds or run_id not in self.infos:
            self.reload_runs()
        if "metrics" in message.kinds:
            self.metrics_changed(run_id)
        if {"metrics", "events"} & message.kinds:
            if run_id in self.series:
                self.refresh_run(run_id)
            elif run_id in self.briefs and run_id not in self._briefing:
                self._brief_queue[run_id] = None  # its row shows progress: keep it current
                self._pump()

    def on_runs_changed(self, _: RunsChanged) -> None:
        self.reload_runs()

    def on_run_list_scrolled(self, _: RunList.Scrolled) -> None:
        self.want_files()

    # ------------------------------------------------------------------ metric views
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
        while len(self._views) > MAX_VIEWS:
            self._views.popitem(last=False)
