"""The console driven as a user would: real files, the real watcher, real keys."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from textual.widgets import Input, TabbedContent

from tests.console.conftest import CLOCK, settle
from trainledger.console.app import TrainledgerApp
from trainledger.console.panes.curves import CurvesPane
from trainledger.console.screens.help import HelpScreen
from trainledger.console.widgets.chart import LineChart
from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.workspace import Workspace, init_workspace


def _app(ws: Workspace, watch: bool = False) -> TrainledgerApp:
    return TrainledgerApp(ws, theme="trainledger-dark", watch=watch, clock=lambda: CLOCK)


async def _wait_for(pilot, predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await pilot.pause(0.02)
    return predicate()


async def test_loads_runs_and_draws_primary_metric(frozen_ws: Workspace) -> None:
    app = _app(frozen_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        assert set(pane.infos) == {"ternary-v5-5", "lvm-amn-mse", "lvm-amn-infonce", "demo-live"}
        assert pane.infos["lvm-amn-infonce"].status == "failed"
        # The newest run is under the cursor and its primary metric is drawn.
        assert pane.plotted() == ["demo-live"]
        assert pane.state.metric == "train/loss"
        result = app.query_one(LineChart).last_result
        assert result is not None and result.points_in == 384


async def test_best_not_last_is_flagged_for_the_seed_002_run(frozen_ws: Workspace) -> None:
    app = _app(frozen_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("end")
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        assert pane.plotted() == ["ternary-v5-5"] and pane.state.metric == "val/loss"
        legend = str(pane.query_one("#legend").render())
        assert "best 0.2843 ep6" in legend and "best≠last" in legend
        assert "last 4.8 ep106" in legend


async def test_keys_change_the_chart(frozen_ws: Workspace) -> None:
    app = _app(frozen_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        await pilot.press("end")
        await settle(pilot)
        names = pane.current_names()
        assert names == ["coverage/hash", "coverage/sampling", "train/loss", "val/loss"]
        await pilot.press("right_square_bracket")
        assert pane.state.metric == "coverage/hash"  # wraps around after val/loss
        await pilot.press("left_square_bracket")
        assert pane.state.metric == "val/loss"
        await pilot.press("l")
        assert pane.state.log_y
        await pilot.press("s", "s")
        assert pane.state.smoothing == 0.9
        await pilot.press("x")
        assert pane.state.x_axis == "epoch"
        await pilot.press("e")
        assert not pane.state.show_events
        # Compare: select the ternary run, move up, pin the live one.
        await pilot.press("space")
        assert pane.state.selected == {"ternary-v5-5"}
        await pilot.press("home", "p")
        assert pane.state.pinned == "demo-live"
        assert pane.plotted() == ["demo-live", "ternary-v5-5"]
        await pilot.press("c")
        assert pane.state.selected == set() and pane.state.pinned is None


async def test_metric_filter_regex(frozen_ws: Workspace) -> None:
    app = _app(frozen_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        await pilot.press("end")
        await settle(pilot)
        await pilot.press("m")  # `/` on the list filters runs
        box = pane.query_one("#metric-filter", Input)
        assert box.has_focus
        await pilot.press(*"^cov", "enter")
        assert pane.state.metric_filter == "^cov"
        assert pane.current_names() == ["coverage/hash", "coverage/sampling"]
        assert pane.state.metric == "coverage/hash"
        # A bad regex is refused and the old filter stays.
        await pilot.press("m", "ctrl+u", *"([", "enter")
        await pilot.pause()
        assert pane.state.metric_filter == "^cov"
        assert box.has_class("-shown") and "bad regular expression" in str(box.border_title)
        await pilot.press("escape")
        assert not box.has_class("-shown")
        # An empty filter clears it.
        await pilot.press("m", "ctrl+u", "enter")
        assert pane.state.metric_filter == ""


async def test_help_lists_every_binding_and_closes(frozen_ws: Workspace) -> None:
    app = _app(frozen_ws)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        described = {row[2] for row in app.screen.rows}
        for binding in [*TrainledgerApp.BINDINGS, *CurvesPane.BINDINGS]:
            assert binding.description in described
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_number_keys_switch_panes_and_q_quits(frozen_ws: Workspace) -> None:
    app = _app(frozen_ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        tabs = app.query_one(TabbedContent)
        for key, pane in (("2", "capture"), ("3", "versions"), ("4", "ports"), ("1", "curves")):
            await pilot.press(key)
            assert tabs.active == pane
        await pilot.press("t")
        assert app.theme == "trainledger-light"
        await pilot.press("q")
    assert app.return_code == 0


async def test_live_rows_reach_the_pane_through_the_watcher(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    app = _app(ws, watch=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        assert pane.infos == {}
        writer = MetricsWriter(ws, run_id="live", directions={"acc": "max"})
        assert await _wait_for(pilot, lambda: "live" in pane.infos)
        for step in range(5):
            writer.log({"loss": 1.0 / (step + 1), "acc": step / 10}, step=step)
        assert await _wait_for(pilot, lambda: pane.drawn_rows.get("live") == 5)
        # A partial line is not shown until it is complete.
        with open(writer.dir / "metrics.jsonl", "ab") as fh:
            fh.write(b'{"step": 5, "loss": 0.1')
        await asyncio.sleep(0.3)
        await pilot.pause()
        assert pane.snapshots["live"].n == 5
        with open(writer.dir / "metrics.jsonl", "ab") as fh:
            fh.write(b"}\n")
        assert await _wait_for(pilot, lambda: pane.snapshots["live"].n == 6)
        # Truncation: the pane starts over with what the file now holds.
        (writer.dir / "metrics.jsonl").write_bytes(b'{"step": 0, "loss": 9.0}\n')
        assert await _wait_for(pilot, lambda: pane.snapshots["live"].n == 1)
        writer.finish()
        assert await _wait_for(pilot, lambda: pane.infos["live"].status == "finished")


async def test_command_palette_runs_pane_actions(frozen_ws: Workspace) -> None:
    app = _app(frozen_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Curves: Log-Y")
        from textual.command import CommandList

        assert await _wait_for(pilot, lambda: app.screen.query_one(CommandList).option_count > 0)
        await pilot.pause(0.3)
        await pilot.press("enter")
        assert await _wait_for(pilot, lambda: pane.state.log_y)


async def test_a_deleted_run_leaves_the_list(tmp_path: Path) -> None:
    import shutil

    ws = init_workspace(tmp_path / "ws")
    for run_id in ("keep", "gone"):
        with MetricsWriter(ws, run_id=run_id) as w:
            w.log({"loss": 1.0}, step=0)
    app = _app(ws, watch=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        assert set(pane.infos) == {"keep", "gone"}
        shutil.rmtree(ws.run_dir("gone"))
        assert await _wait_for(pilot, lambda: set(pane.infos) == {"keep"})
        assert "gone" not in pane.series


async def test_palette_offers_the_shown_panes_actions_and_only_our_themes(frozen_ws: Workspace) -> None:
    from textual.command import CommandList

    from trainledger.themes import THEMES

    app = _app(frozen_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)

        def titles() -> list[str]:
            return [c.title for c in app.get_system_commands(app.screen)]

        others = ("Capture: ", "Versions: ", "Ports: ")
        assert any(t.startswith("Curves: ") for t in titles())
        assert not any(t.startswith(others) for t in titles()), titles()
        await pilot.press("2")
        tabs = app.query_one(TabbedContent)
        assert await _wait_for(pilot, lambda: any(t.startswith("Capture: ") for t in titles()))
        assert not any(t.startswith(("Curves: ", "Versions: ", "Ports: ")) for t in titles()), titles()
        assert tabs.active == "capture"
        # the themes: the palette's theme picker lists this project's four and nothing else
        assert set(app.available_themes) == set(THEMES)
        app.action_change_theme()
        assert await _wait_for(pilot, lambda: bool(app.screen.query(CommandList))
                               and app.screen.query_one(CommandList).option_count > 0)  # fmt: skip
        await pilot.pause(0.3)
        options = app.screen.query_one(CommandList)
        shown = {str(options.get_option_at_index(i).prompt) for i in range(options.option_count)}
        assert shown == set(THEMES), shown


async def test_quitting_names_a_capture_server_started_while_open(tmp_path: Path) -> None:
    from trainledger.engines.capture import process

    ws = init_workspace(tmp_path / "ws")
    app = _app(ws)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            assert app.left_running() == ""
            # what S in the Capture pane calls (on a free port: tests run side by side)
            state = await asyncio.to_thread(process.start_server, ws, port=0)
            await pilot.press("q")
        said = app.left_running()
        assert f"capture server at {state.url} (pid {state.pid})" in said, said
        assert f"stop it: trainledger capture stop --workspace {ws.root}" in said
        await asyncio.to_thread(process.stop_server, ws)
        assert app.left_running() == ""
    finally:
        await asyncio.to_thread(process.stop_server, ws)


def test_help_lists_the_new_run_forms_keys(frozen_ws: Workspace) -> None:
    rows = _app(frozen_ws).help_rows()
    form = {(key, what) for where, key, what in rows if where == "New run"}
    assert {row[1] for row in form} >= {"Start", "Cancel"}, rows
