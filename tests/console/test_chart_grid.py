"""`g`: a grid of small charts, one per metric the filter matches; enter opens one full size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Static

from tests.console.conftest import CLOCK, settle
from trainledger.console.app import TrainledgerApp
from trainledger.console.panes.curves import CurvesPane
from trainledger.console.widgets.chart import LineChart
from trainledger.console.widgets.chart_grid import CELL_MIN_WIDTH, ChartGrid, grid_shape
from trainledger.console.widgets.chart_render import BEST_GLYPH
from trainledger.engines.workspace import METRICS_FILE, RUN_FILE, Workspace, init_workspace

METRICS = ("train/loss", "val/loss", "val/acc", "lr", "grad_norm", "tokens_per_s")


def _ws(tmp_path: Path) -> Workspace:
    ws = init_workspace(tmp_path / "ws")
    d = ws.runs_dir / "run-a"
    d.mkdir()
    (d / RUN_FILE).write_text(json.dumps({"status": "finished", "started": 1000.0}))
    with open(d / METRICS_FILE, "w") as fh:
        for i in range(200):
            row = {"step": i, **{m: (k + 1) * (1 + ((i - 50 * k) % 200) / 100) for k, m in enumerate(METRICS)}}
            if i % 2:
                del row["lr"]  # lr only every other step: its own point count
            fh.write(json.dumps(row) + "\n")
    return ws


def _app(ws: Workspace) -> TrainledgerApp:
    return TrainledgerApp(ws, theme="trainledger-dark", watch=False, clock=lambda: CLOCK)


@pytest.mark.parametrize(
    "width,height,n,shape",
    [(48, 15, 6, (2, 1)), (48, 17, 6, (2, 2)), (115, 42, 6, (3, 2)), (115, 42, 30, (4, 4)),
     (115, 42, 1, (1, 1)), (10, 4, 3, (1, 1))],
)
def test_grid_shape(width: int, height: int, n: int, shape: tuple[int, int]) -> None:
    assert grid_shape(width, height, n) == shape


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_g_shows_every_metric_and_enter_opens_one(tmp_path: Path, size: tuple[int, int]) -> None:
    app = _app(_ws(tmp_path))
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        await pilot.press("g")
        await settle(pilot)
        grid = pane.query_one(ChartGrid)
        assert grid.display and not pane.query_one(LineChart).display and app.focused is grid
        assert grid.metrics == sorted(METRICS)
        footer = str(pane.query_one("#curves-footer", Static).content)
        assert "points" not in footer  # the hidden single chart's count is not the grid's
        cols, rows = grid.shape()
        assert grid.content_size.width // cols >= CELL_MIN_WIDTH
        first, last = grid.page_range()
        assert last - first == min(cols * rows, len(METRICS))
        if size == (200, 50):
            assert cols * rows >= 6  # six metrics at once
        text = grid.render().plain
        assert f"of {len(METRICS)} metrics" in text.splitlines()[-1]
        for metric in grid.metrics[first:last]:
            assert metric in text
            drawn = grid.results[metric]
            assert f"{drawn.points_drawn:,} of {drawn.points_in:,} points" in text
            if "loss" in metric or "acc" in metric:  # a direction known: each its own best marker
                assert sum(line.plain.count(BEST_GLYPH) for line in drawn.lines) == 1
        lr = grid.results.get("lr")
        if lr is not None:
            assert lr.points_in == 100
        # Move to the last metric (paging if need be), open it full size.
        await pilot.press("end")
        await settle(pilot)
        assert grid.current == sorted(METRICS)[-1]
        assert grid.page_range()[1] == len(METRICS)
        await pilot.press("enter")
        await settle(pilot)
        assert pane.state.metric == sorted(METRICS)[-1] and pane.state.metric_chosen
        assert not grid.display and pane.query_one(LineChart).display
        assert app.focused is pane.query_one(LineChart)
        assert "points" in str(pane.query_one("#curves-footer", Static).content)


async def test_grid_follows_the_filter_and_pages(tmp_path: Path) -> None:
    app = _app(_ws(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        pane.state.metric_filter = "loss|acc|lr|norm"
        pane.redraw()
        await pilot.press("g")
        await settle(pilot)
        grid = pane.query_one(ChartGrid)
        assert grid.metrics == ["grad_norm", "lr", "train/loss", "val/acc", "val/loss"]
        per = grid.per_page()
        assert per < len(grid.metrics)  # 80x24 pages
        await pilot.press("home")
        await settle(pilot)
        assert grid.page_range() == (0, per)
        assert grid.render().plain.splitlines()[-1].startswith(f"1–{per} of 5 metrics") or per == 1
        await pilot.press("pagedown")
        await settle(pilot)
        assert grid.page_range()[0] == per and grid.selected == per
        await pilot.press("pageup")
        await settle(pilot)
        assert grid.selected == 0
        await pilot.press("down" if grid.shape()[1] > 1 else "right")
        await settle(pilot)
        assert grid.selected == (grid.shape()[0] if grid.shape()[1] > 1 else 1)
        # New data or a new filter reaches the grid through the pane's redraw.
        pane.state.metric_filter = "val/"
        pane.redraw()
        await settle(pilot)
        assert grid.metrics == ["val/acc", "val/loss"]
        await pilot.press("escape")
        await settle(pilot)
        assert not grid.display and pane.query_one(LineChart).display
        await pilot.press("g")
        await settle(pilot)
        assert grid.display
        await pilot.press("g")
        await settle(pilot)
        assert not grid.display


async def test_metric_names_reach_the_grid_as_plain_text(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    d = ws.runs_dir / "run-x"
    d.mkdir()
    (d / RUN_FILE).write_text(json.dumps({"status": "finished", "started": 1000.0}))
    hostile = "[bold red]loss\x1b[31m"
    (d / METRICS_FILE).write_text("".join(json.dumps({"step": i, hostile: 1.0 / (i + 1), "ok": i}) + "\n"
                                          for i in range(20)))
    app = _app(ws)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        await pilot.press("g")
        await settle(pilot)
        grid = pane.query_one(ChartGrid)
        rendered = grid.render()
        assert "[bold red]loss" in rendered.plain and "\x1b" not in rendered.plain
        assert not any("red" in str(span.style) for span in rendered.spans)  # shown, not applied
