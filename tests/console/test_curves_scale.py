"""Many runs: the list comes from run.json at once, series are read only where they show.

The real app on a real workspace of 150 runs; what is read is observed through the
pane's state and the app's own workers, not through a mocked engine.
"""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import DataTable

from tests.console.conftest import CLOCK, settle
from trainledger.console.app import TrainledgerApp
from trainledger.console.panes import curves_loader
from trainledger.console.panes.curves import CurvesPane
from trainledger.console.widgets.runlist import RunList
from trainledger.engines.workspace import METRICS_FILE, RUN_FILE, Workspace, init_workspace

RUNS = 150


def _ws(tmp_path: Path, runs: int = RUNS) -> Workspace:
    ws = init_workspace(tmp_path / "ws")
    for k in range(runs):
        d = ws.runs_dir / f"run-{k:04d}"
        d.mkdir()
        (d / RUN_FILE).write_text(json.dumps({"status": "finished", "started": 1000.0 + k}))
        with open(d / METRICS_FILE, "w") as fh:
            for i in range(30):
                fh.write(json.dumps({"step": i + k, "epoch": i // 10, "loss": 1 / (i + 1)}) + "\n")
    return ws


def _app(ws: Workspace):  # noqa: ANN202 - (app, busy counts, message hook)
    busy: list[int] = []

    def hook(_message: object) -> None:  # how many of the pane's readers run at each message
        busy.append(sum(1 for w in app.workers if w.group.startswith(("series:", "briefs"))
                        and not w.is_finished))  # fmt: skip

    app = TrainledgerApp(ws, theme="trainledger-dark", watch=False, clock=lambda: CLOCK)
    return app, busy, hook


async def test_only_what_is_on_screen_is_read(tmp_path: Path) -> None:
    app, busy, hook = _app(_ws(tmp_path))
    async with app.run_test(size=(120, 30), message_hook=hook) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        runlist = pane.query_one(RunList)
        assert len(runlist.order) == RUNS and runlist.cursor_run == f"run-{RUNS - 1:04d}"
        assert list(pane.series) == [f"run-{RUNS - 1:04d}"]  # only the plotted run is parsed
        visible = set(runlist.visible_runs())
        assert visible <= set(pane.briefs) and len(pane.briefs) < RUNS // 2
        assert max(busy) <= curves_loader.MAX_WORKERS
        # A visible run's progress column comes from its brief, like a parsed run's would.
        row = runlist.get_row(runlist.order[3])
        assert row[2].plain == f"s{29 + RUNS - 4} e2"
        # Scroll to the bottom: the last run is read, the first is no longer kept.
        await pilot.press("end")
        await settle(pilot)
        assert runlist.cursor_run == "run-0000"
        assert "run-0000" in pane.series and len(pane.series) <= 1 + curves_loader.KEEP_SERIES
        assert {"run-0000", "run-0005"} <= set(pane.briefs)
        assert pane.query_one(RunList).get_row("run-0000")[2].plain == "s29 e2"
        assert max(busy) <= curves_loader.MAX_WORKERS


async def test_one_result_updates_one_row(tmp_path: Path, monkeypatch) -> None:
    ws = _ws(tmp_path, runs=40)
    app, _, _ = _app(ws)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        touched: list[str] = []
        original = DataTable.update_cell

        def spy(self, row_key, column_key, value, **kw):  # noqa: ANN001, ANN003, ANN202
            touched.append(str(getattr(row_key, "value", row_key)))
            return original(self, row_key, column_key, value, **kw)

        monkeypatch.setattr(DataTable, "update_cell", spy)
        cursor = pane.query_one(RunList).cursor_run
        with open(ws.runs_dir / cursor / METRICS_FILE, "a") as fh:
            fh.write(json.dumps({"step": 500, "epoch": 7, "loss": 0.01}) + "\n")
        pane.refresh_run(cursor)
        await settle(pilot)
        assert pane.snapshots[cursor].n == 31
        assert touched and set(touched) == {cursor}
        assert pane.query_one(RunList).get_row(cursor)[2].plain == "s500 e7"


async def test_a_theme_change_restyles_rows_that_did_not_change(frozen_ws: Workspace) -> None:
    from trainledger.console.styles import theme_style

    app = TrainledgerApp(frozen_ws, theme="trainledger-dark", watch=False, clock=lambda: CLOCK)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        runlist = app.query_one(CurvesPane).query_one(RunList)
        seen = set()
        for _ in range(4):  # every theme: the failed run's status in that theme's error style
            await pilot.press("t")
            await settle(pilot)
            style = str(runlist.get_row("lvm-amn-infonce")[1].style)
            assert style == str(theme_style(app, "error", bold=True))
            seen.add(style)
        assert len(seen) > 1
