"""The chart's cursor and zoom, in the real app on a real workspace.

←/→ belong to the chart (it takes the focus with Tab): with the run list focused they
keep scrolling the list and never move the cursor.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.console.conftest import CLOCK, settle
from trainledger.console.app import TrainledgerApp
from trainledger.console.panes.curves import CurvesPane
from trainledger.console.widgets.chart import LineChart
from trainledger.console.widgets.runlist import RunList
from trainledger.engines.workspace import METRICS_FILE, RUN_FILE, Workspace, init_workspace


def _ws(tmp_path: Path) -> Workspace:
    ws = init_workspace(tmp_path / "ws")
    for k, (run_id, n, scale) in enumerate((("run-a", 100, 1.0), ("run-b", 50, 10.0))):
        d = ws.runs_dir / run_id
        d.mkdir()
        (d / RUN_FILE).write_text(json.dumps({"status": "finished", "started": 1000.0 + k}))
        with open(d / METRICS_FILE, "w") as fh:
            for i in range(n):
                fh.write(json.dumps({"step": i, "epoch": i // 10, "loss": i * scale + 1}) + "\n")
    return ws


def _app(ws: Workspace) -> TrainledgerApp:
    return TrainledgerApp(ws, theme="trainledger-dark", watch=False, clock=lambda: CLOCK)


async def _both_plotted(pilot, pane: CurvesPane) -> None:
    await settle(pilot)
    await pilot.press("space", "down")  # compare run-b (newest), cursor on run-a
    await settle(pilot)
    assert set(pane.plotted()) == {"run-a", "run-b"}


def _expected(run_n: int, scale: float, x: float) -> str:
    """What the readout should say of a run with steps 0..n-1 and loss = step*scale + 1."""
    step = min(int(x), run_n - 1)
    value = step * scale + 1
    return f"{value:.4g} @{step}"


async def test_left_right_move_the_cursor_only_on_the_focused_chart(tmp_path: Path) -> None:
    app = _app(_ws(tmp_path))
    async with app.run_test(size=(110, 32)) as pilot:
        pane = app.query_one(CurvesPane)
        await _both_plotted(pilot, pane)
        chart = pane.query_one(LineChart)
        runlist = pane.query_one(RunList)
        assert app.focused is runlist
        await pilot.press("left", "right", "right")
        await settle(pilot)
        assert chart.cursor_x is None and not chart.readout  # the list keeps its keys
        await pilot.press("tab")
        await settle(pilot)
        assert app.focused is chart
        assert chart.cursor_x == 99.0  # it starts on the newest point
        readout = "\n".join(line.plain for line in chart.readout)
        assert "step ≤ 99" in readout
        assert f"run-a {_expected(100, 1.0, 99)}" in readout
        assert f"run-b {_expected(50, 10.0, 99)}" in readout  # its last point, at step 49
        await pilot.press(*["left"] * 25)
        await settle(pilot)
        x = chart.cursor_x
        assert x is not None and 0 < x < 99
        readout = "\n".join(line.plain for line in chart.readout)
        assert f"run-a {_expected(100, 1.0, x)}" in readout
        assert f"run-b {_expected(50, 10.0, x)}" in readout
        result = chart.last_result
        assert result is not None and result.cursor_col is not None
        rows = [line.plain[result.plot_left + result.cursor_col] for line in result.lines[: result.plot_height]]
        assert "│" in rows
        await pilot.press("home")
        await settle(pilot)
        assert chart.cursor_x is not None and chart.cursor_x < 99 / result.plot_width + 1
        await pilot.press("escape")
        await settle(pilot)
        assert chart.cursor_x is None and not chart.readout


async def test_z_marks_then_zooms_and_Z_resets(tmp_path: Path) -> None:
    app = _app(_ws(tmp_path))
    async with app.run_test(size=(110, 32)) as pilot:
        pane = app.query_one(CurvesPane)
        await _both_plotted(pilot, pane)
        chart = pane.query_one(LineChart)
        await pilot.press("tab", "z")  # mark the cursor's x (99)
        await settle(pilot)
        assert chart.zoom is None and chart.zoom_mark == 99.0
        await pilot.press(*["left"] * 30, "z")
        await settle(pilot)
        lo = chart.cursor_x
        assert lo is not None and chart.zoom == (lo, 99.0) and chart.zoom_mark is None
        assert chart.last_result is not None and chart.last_result.x_range == (lo, 99.0)
        assert "zoom" in chart.readout[0].plain and "Z resets" in chart.readout[0].plain
        await pilot.press("Z")
        await settle(pilot)
        assert chart.zoom is None
        assert chart.last_result.x_range == (0.0, 99.0)


async def test_z_without_the_cursor_zooms_into_the_middle(tmp_path: Path) -> None:
    app = _app(_ws(tmp_path))
    async with app.run_test(size=(110, 32)) as pilot:
        pane = app.query_one(CurvesPane)
        await _both_plotted(pilot, pane)
        chart = pane.query_one(LineChart)
        await pilot.press("z")  # the run list has the focus: no cursor
        await settle(pilot)
        assert chart.zoom == (24.75, 74.25)
        await pilot.press("x")  # another x axis: the zoom was in steps, it goes
        await settle(pilot)
        assert chart.zoom is None and chart.x_label == "epoch"
        assert "epoch" in chart.last_result.lines[-1].plain


async def test_a_cursor_on_the_newest_point_follows_new_rows() -> None:
    import numpy as np
    from textual.app import App, ComposeResult

    from trainledger.console.widgets.chart import ChartSeries

    class ChartApp(App[None]):
        def compose(self) -> ComposeResult:
            yield LineChart(id="chart")

    def series(n: int) -> list[ChartSeries]:
        x = np.arange(n, dtype=np.float64)
        return [ChartSeries("live", x, x * 2, "red")]

    app = ChartApp()
    async with app.run_test(size=(70, 20)) as pilot:
        chart = app.query_one(LineChart)
        chart.set_data(series(100))
        chart.focus()
        await pilot.pause()
        assert chart.cursor_x == 99.0 and chart.cursor_follows
        chart.set_data(series(150))
        await pilot.pause()
        assert chart.cursor_x == 149.0
        assert "live 298 @149" in chart.readout[0].plain
        await pilot.press("left")
        await pilot.pause()
        held = chart.cursor_x
        assert held is not None and held < 149 and not chart.cursor_follows
        chart.set_data(series(200))
        await pilot.pause()
        assert chart.cursor_x == held  # a cursor the user moved stays where it was put
        chart.set_data(series(200), x_label="time")
        await pilot.pause()
        assert chart.cursor_x is None  # other units: the cursor goes
