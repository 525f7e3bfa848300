"""The run list for many runs: config and metric columns (`h`), sort (`o` / `O`), the run
filter (`/`), compare what it shows (`a`), whole names and a whole status at 80x24.

The real Curves pane on real workspaces of run folders (300 runs for the sort). The app
here has the Curves pane alone, so what another pane does cannot change what these see.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from textual.widgets import Input, SelectionList

from tests.console.conftest import CLOCK, settle
from trainledger.console.app import PANES, TrainledgerApp
from trainledger.console.panes.curves import CurvesPane
from trainledger.console.run_filter import Column
from trainledger.console.screens.columns import ColumnsScreen
from trainledger.console.widgets.chart import LineChart
from trainledger.console.widgets.runlist import RunList
from trainledger.engines.workspace import METRICS_FILE, RUN_FILE, Workspace, init_workspace

MODELS = ("lvm-amn", "ternary-vae", "lora-lm")
STATUSES = ("finished", "failed", "stopped")
LRS = (0.1, 0.03, 0.01, 0.003, 0.001)


class CurvesOnly(TrainledgerApp):
    PANES = [p for p in PANES if p.id == "curves"]


def run_config(k: int) -> dict[str, object]:
    config: dict[str, object] = {"lr": LRS[k % 5], "batch": 2 ** (4 + k % 4), "epochs": 3}
    if k % 7:  # every 7th run lacks opt: its cells are empty and it sorts last
        config["opt"] = {"name": "adam" if k % 2 else "sgd", "beta": round(0.9 + (k % 10) / 100, 2)}
    return config


def many_ws(root: Path, runs: int = 300, rows: int = 8) -> Workspace:
    """`runs` finished/failed/stopped runs of three models, a config each, a few metric rows."""
    ws = init_workspace(root / "ws")
    for k in range(runs):
        d = ws.runs_dir / f"run-{k:04d}"
        d.mkdir()
        (d / RUN_FILE).write_text(json.dumps({
            "status": STATUSES[k % 3], "model": MODELS[k % 3], "started": 1_795_000_000.0 + k,
            "config": run_config(k), "metrics": {"val_loss": {"direction": "min"}},
        }))  # fmt: skip
        with open(d / METRICS_FILE, "w") as fh:
            for i in range(rows):  # val_loss is lowest (best) at row 3, last at row 7
                fh.write(json.dumps({"step": i, "epoch": i // 3, "loss": 1 / (i + 1),
                                     "val_loss": k + abs(i - 3) / 10}) + "\n")  # fmt: skip
        if k % 10 == 0:
            (d / "meta.json").write_text(json.dumps({"schema": "trainledger-meta/1", "tags": ["keep", f"g{k % 3}"],
                                                     "note": "", "archived": False, "name": None}))  # fmt: skip
    return ws


def screen_text(app: TrainledgerApp) -> str:
    """What the screen shows, as text (the SVG screenshot without its markup)."""
    text = re.sub(r"<[^>]+>", "", app.export_screenshot())
    return html.unescape(text).replace("\xa0", " ")


def app_for(ws: Workspace, **kw: object) -> CurvesOnly:
    return CurvesOnly(ws, theme="trainledger-dark", watch=False, clock=lambda: CLOCK, **kw)  # type: ignore[arg-type]


async def pick(pilot, pane: CurvesPane, *cols: Column) -> None:  # noqa: ANN001
    """`h`, tick these columns on the picker as a user does (space on each row), Enter."""
    await pilot.press("h")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, ColumnsScreen)
    box = screen.query_one(SelectionList)
    for col in cols:
        find = screen.query_one("#columns-find", Input)
        find.value = col.key
        await pilot.pause()
        index = next(i for i in range(box.option_count) if box.get_option_at_index(i).value == col.id)
        box.highlighted = index
        box.focus()
        assert str(box.get_option_at_index(index).prompt).startswith("  ")
        await pilot.press("space")
        await pilot.pause()
        # ticked says so in its text, not only in colour (NO_COLOR, the mono theme)
        assert str(box.get_option_at_index(index).prompt).startswith("✓ ")
    await pilot.press("enter")
    await settle(pilot)


async def test_two_config_columns_sort_300_runs(tmp_path: Path) -> None:
    ws = many_ws(tmp_path)
    async with app_for(ws).run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        pane = pilot.app.query_one(CurvesPane)
        runlist = pane.query_one(RunList)
        assert len(runlist.order) == 300
        await pick(pilot, pane, Column("config", "lr"), Column("config", "opt.beta"))
        assert [c.id for c in pane.list_view.columns] == ["config:lr", "config:opt.beta"]
        keys = [k for k, _, _ in runlist.columns_shown]
        assert keys[-2:] == ["config:lr", "config:opt.beta"]
        # The cells show each run's value, numbers as written.
        assert runlist.get_row("run-0001")[-2].plain == "0.03"
        assert runlist.get_row("run-0001")[-1].plain == "0.91"
        assert runlist.get_row("run-0007")[-1].plain == ""  # no opt in its config
        # o cycles: started, run, status, progress, model, tags, lr, opt.beta.
        for _ in range(6):
            await pilot.press("o")
        await settle(pilot)
        assert pane.list_view.sort == "config:lr"
        lrs = [pane.column_value(pane.infos[r], Column("config", "lr")) for r in runlist.order]
        assert lrs == sorted(lrs) and lrs[0] == 0.001 and lrs[-1] == 0.1  # numeric, not text
        await pilot.press("o")  # opt.beta: numeric, the runs without it last
        await settle(pilot)
        betas = [pane.column_value(pane.infos[r], Column("config", "opt.beta")) for r in runlist.order]
        have = [b for b in betas if b is not None]
        assert have == sorted(have) and betas[len(have):] == [None] * (300 - len(have))
        await pilot.press("O")  # reversed: largest first, missing still last
        await settle(pilot)
        betas = [pane.column_value(pane.infos[r], Column("config", "opt.beta")) for r in runlist.order]
        have = [b for b in betas if b is not None]
        assert have == sorted(have, reverse=True) and betas[-1] is None
        assert "sort opt.beta ↑" in str(pane.query_one("#list-info").render())
        # A click on a header sorts by that column; a second click reverses.
        await pilot.click(RunList, offset=(runlist.columns_shown[0][2] + 4, 0))  # the status header
        await settle(pilot)
        assert pane.list_view.sort == "status" and not pane.list_view.reverse
        assert pane.infos[runlist.order[0]].status == "failed" and pane.infos[runlist.order[-1]].status == "stopped"
        await pilot.click(RunList, offset=(runlist.columns_shown[0][2] + 4, 0))
        await settle(pilot)
        assert pane.list_view.reverse and pane.infos[runlist.order[0]].status == "stopped"
        # The choice is kept for the session: the list is read again, the columns stay.
        pane.reload_runs()
        await settle(pilot)
        assert [k for k, _, _ in runlist.columns_shown][-2:] == ["config:lr", "config:opt.beta"]


async def test_a_metric_column_shows_the_best_and_sorts_best_first(tmp_path: Path) -> None:
    ws = many_ws(tmp_path, runs=40)
    async with app_for(ws).run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        pane = pilot.app.query_one(CurvesPane)
        runlist = pane.query_one(RunList)
        await pick(pilot, pane, Column("metric", "val_loss"))
        await settle(pilot)
        assert pane.list_view.columns == [Column("metric", "val_loss")]
        assert runlist.columns_shown[-1][1] == "val_loss↓"  # lower is better: its best is shown
        assert runlist.get_row("run-0005")[-1].plain == "5"  # best (row 3), not the last (5.4)
        pane.list_view.sort = "metric:val_loss"
        pane.apply_list_view()
        await settle(pilot)
        assert runlist.order[:3] == ["run-0000", "run-0001", "run-0002"]


async def test_the_run_filter_by_model_status_tag_and_text(tmp_path: Path) -> None:
    ws = many_ws(tmp_path, runs=60)
    async with app_for(ws).run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        pane = pilot.app.query_one(CurvesPane)
        runlist = pane.query_one(RunList)

        async def filtered(text: str) -> list[str]:
            await pilot.press("slash")
            box = pane.query_one("#run-filter", Input)
            assert box.has_focus
            box.value = ""
            await pilot.press(*text, "enter")
            await settle(pilot)
            assert runlist.has_focus
            return runlist.order

        assert set(await filtered("model:ternary")) == {f"run-{k:04d}" for k in range(60) if k % 3 == 1}
        assert set(await filtered("status:failed")) == {f"run-{k:04d}" for k in range(60) if k % 3 == 1}
        assert set(await filtered("tag:keep")) == {f"run-{k:04d}" for k in range(0, 60, 10)}
        assert set(await filtered("tag:keep model:lvm")) == {"run-0000", "run-0030"}
        assert await filtered("run-0042") == ["run-0042"]
        assert "1 of 60" in str(pane.query_one("#list-info").render())
        # Esc leaves the filter box with the filter it had before.
        await pilot.press("slash", "ctrl+u", *"nothing-matches")
        await pilot.pause()
        assert runlist.order == []  # it filters as one types
        await pilot.press("escape")
        await settle(pilot)
        assert runlist.order == ["run-0042"]
        assert len(await filtered("")) == 60
        # With the chart focused, / is the metric filter, as before.
        pane.query_one(LineChart).focus()
        await pilot.press("slash")
        assert pane.query_one("#metric-filter", Input).has_focus
        await pilot.press("escape")
        # m opens the metric filter from the list too.
        runlist.focus()
        await pilot.press("m")
        assert pane.query_one("#metric-filter", Input).has_focus


async def test_a_compares_every_run_the_filter_shows_and_again_clears(tmp_path: Path) -> None:
    ws = many_ws(tmp_path, runs=30)
    async with app_for(ws).run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        pane = pilot.app.query_one(CurvesPane)
        await pilot.press("slash", *"tag:keep", "enter")
        await settle(pilot)
        shown = pane.query_one(RunList).order
        assert sorted(shown) == ["run-0000", "run-0010", "run-0020"]
        await pilot.press("a")
        await settle(pilot)
        assert pane.state.selected == set(shown)
        assert sorted(pane.plotted()) == sorted(shown)
        chart = pane.query_one(LineChart)
        assert len(chart.series) == 3  # the chart compares them
        assert all(pane.query_one(RunList).get_row(r)[0].plain.startswith(" ✓") for r in shown)
        await pilot.press("a")
        await settle(pilot)
        assert pane.state.selected == set()


async def test_80x24_shows_status_whole_and_names_from_the_left(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    names = {f"r{k:02d}": f"experiment-number-{k:02d}-with-a-long-name" for k in range(30)}
    names["r00"] = "[red]x[/red]\x1b[31mbad"
    for k, (run_id, name) in enumerate(names.items()):
        d = ws.runs_dir / run_id
        d.mkdir()
        (d / RUN_FILE).write_text(json.dumps({"status": "finished", "name": name, "started": 1000.0 + k}))
    (ws.runs_dir / "r00" / "meta.json").write_text(json.dumps({"tags": ["[b]t"], "archived": False}))
    async with app_for(ws).run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        runlist = pilot.app.query_one(RunList)
        assert runlist.max_scroll_y > 0  # 30 rows: the list has a vertical scrollbar
        text = screen_text(pilot.app)
        assert "finished" in text and "finishe " not in text
        row = runlist.get_row("r29")
        assert row[0].plain == "  experiment-num…" and row[1].plain == "finished"
        hostile = runlist.get_row("r00")[0].plain
        assert hostile.startswith("  [red]x[/red]␛[") and "\x1b" not in hostile
        await pilot.press("end")  # r00 is the oldest: the last row
        await settle(pilot)
        text = screen_text(pilot.app)
        assert "[red]x[/red]␛[" in text  # drawn as it is written, no colour from it


async def test_an_empty_workspace_says_how_to_start_a_run(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    async with app_for(ws).run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        pane = pilot.app.query_one(CurvesPane)
        assert "press n to start one" in pane._empty_text()
        shown = screen_text(pilot.app)
        for way in ("No runs in", "  n ", "trainledger train MODEL", "trainledger.log(", "trainledger demo"):
            assert way in shown, way


async def test_a_on_300_runs_charts_them_all(tmp_path: Path) -> None:
    ws = many_ws(tmp_path, runs=300, rows=4)
    async with app_for(ws).run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        pane = pilot.app.query_one(CurvesPane)
        await pilot.press("a")
        chart = pane.query_one(LineChart)
        for _ in range(240):  # their series arrive two readers at a time, the chart redrawn in batches
            await settle(pilot, rounds=1)
            if len(chart.series) == 300:
                break
            await pilot.pause(0.25)
        assert len(pane.state.selected) == 300 and len(chart.series) == 300


async def test_hostile_config_keys_and_values_are_plain_text_in_columns(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    d = ws.runs_dir / "r1"
    d.mkdir()
    (d / RUN_FILE).write_text(json.dumps({"status": "finished", "started": 1.0,
                                          "config": {"[b]k\x1b": "[red]v\x1b[31m"}}))  # fmt: skip
    async with app_for(ws).run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        pane = pilot.app.query_one(CurvesPane)
        await pick(pilot, pane, Column("config", "[b]k\x1b"))
        runlist = pane.query_one(RunList)
        cell = runlist.get_row("r1")[-1]
        assert cell.plain == "[red]v␛[31m" and not cell.spans
        header = runlist.ordered_columns[-1].label
        assert header.plain == "[b]k␛"
        text = screen_text(pilot.app)
        assert "[red]v␛[31m" in text and "\x1b" not in pilot.app.export_screenshot()
