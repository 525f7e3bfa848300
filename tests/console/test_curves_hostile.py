"""The console on a workspace that attacks it: markup and escapes in names, FIFOs, deep lines.

The real app (`run_test` at 80x24) on real files: the app must keep running, show each
run with its problem said, and no escape or BEL from the data may reach the screen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rich.text import Text
from textual.widgets import Input, Static

from tests.console.conftest import CLOCK, settle
from trainledger.console.app import TrainledgerApp
from trainledger.console.panes.curves import CurvesPane
from trainledger.console.widgets.runlist import RunList
from trainledger.engines.workspace import METRICS_FILE, RUN_FILE, Workspace, init_workspace

NAMES = {
    "close-tag": "[/]",
    "link": "[link=x]y[reverse]z",
    "title": "\x1b]2;pwned\x07",
    "clipboard": "\x1b]52;c;aGk=\x07",
    "csi": "\x9b31m",
}
CONTROL = ("\x1b", "\x07", "\x9b")


def _run(ws: Workspace, run_id: str, name: str, started: float, metric: str = "loss") -> Path:
    d = ws.runs_dir / run_id
    d.mkdir(parents=True)
    info = {"name": name, "status": "failed", "started": started, "error": f"boom {name}"}
    (d / RUN_FILE).write_text(json.dumps(info))
    with open(d / METRICS_FILE, "w") as fh:
        for i in range(20):
            fh.write(json.dumps({"step": i, metric: 1.0 / (i + 1), "epoch": i // 5}) + "\n")
    return d


def _hostile_ws(tmp_path: Path) -> Workspace:
    ws = init_workspace(tmp_path / "ws")
    for k, (run_id, name) in enumerate(NAMES.items()):
        _run(ws, run_id, name, started=100.0 + k)
    _run(ws, "bold-metric", "[bold]", started=50.0, metric="[bold]")
    deep = _run(ws, "deep", "deep", started=40.0)
    with open(deep / METRICS_FILE, "ab") as fh:
        fh.write(b'{"step": 99, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    fifo = _run(ws, "fifo", "fifo", started=200.0)  # the newest: under the cursor
    (fifo / METRICS_FILE).unlink()
    os.mkfifo(fifo / METRICS_FILE)
    return ws


def _app(ws: Workspace) -> TrainledgerApp:
    return TrainledgerApp(ws, theme="trainledger-dark", watch=False, clock=lambda: CLOCK)


def _cell_texts(runlist: RunList) -> list[Text]:
    out = []
    for run_id in runlist.order:
        for cell in runlist.get_row(run_id):
            assert isinstance(cell, Text), "a cell from data must be Text, never markup"
            out.append(cell)
    return out


def _assert_clean(app: TrainledgerApp) -> None:
    shot = app.export_screenshot()
    for ch in CONTROL:
        assert ch not in shot
    pane = app.query_one(CurvesPane)
    for widget in pane.query(Static):
        rendered = str(widget.render())
        assert not any(ch in rendered for ch in CONTROL)


async def test_hostile_names_are_shown_as_text(tmp_path: Path) -> None:
    app = _app(_hostile_ws(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        runlist = pane.query_one(RunList)
        assert app.is_running and len(runlist.order) == 8
        texts = [t.plain for t in _cell_texts(runlist)]
        assert any(t.endswith("[/]") for t in texts)
        assert any(t.startswith("  [link=x]y[reve") for t in texts)  # the tag shown, not applied
        assert any("␛]2;pwned␇" in t for t in texts)
        assert not any(ch in t for t in texts for ch in CONTROL)
        _assert_clean(app)
        # Walk every run: legends, footers (error texts) and the chart get each name.
        for _ in range(8):
            await pilot.press("down")
            await settle(pilot)
            assert app.is_running
            _assert_clean(app)
        await pilot.press("q")
    assert app.return_code == 0


async def test_bad_filter_and_markup_metric_keep_the_console_up(tmp_path: Path) -> None:
    app = _app(_hostile_ws(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        await pilot.press("end", "up")  # the run whose metric is called "[bold]"
        await settle(pilot)
        assert pane.state.metric == "[bold]"
        assert "[bold]" in str(pane.query_one("#curves-header", Static).render())
        await pilot.press("m", *"[/a", "enter")
        await settle(pilot)
        box = pane.query_one("#metric-filter", Input)
        assert app.is_running and box.has_class("-invalid")
        assert "[/a" in str(box.border_title)
        _assert_clean(app)
        await pilot.press("escape", "q")
    assert app.return_code == 0


async def test_fifo_run_shows_its_problem_and_q_exits(tmp_path: Path) -> None:
    app = _app(_hostile_ws(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        assert pane.query_one(RunList).cursor_run == "fifo"
        assert "FIFO" in str(pane.query_one("#curves-footer", Static).render())
        await pilot.press("end")
        await settle(pilot)  # the run with a line nested 100,000 deep
        assert pane.snapshots["deep"].n == 20 and pane.snapshots["deep"].malformed == 1
        await pilot.press("q")
    assert app.return_code == 0


def test_trainledger_runs_prints_no_escapes(tmp_path: Path) -> None:
    ws = _hostile_ws(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "trainledger", "runs", str(ws.root)],
                          capture_output=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr
    for ch in CONTROL:
        assert ch.encode() not in proc.stdout and ch.encode("utf-8") not in proc.stdout
    assert proc.stdout.count(b"\n") == 8
    assert "␛]2;pwned␇".encode() in proc.stdout


async def test_metric_cap_is_said_in_the_footer(tmp_path: Path) -> None:
    from trainledger.engines.metrics.series import MAX_METRICS

    ws = init_workspace(tmp_path / "ws")
    d = _run(ws, "wide", "wide", started=1.0)
    (d / RUN_FILE).write_text(json.dumps({"status": "finished", "started": 1.0}))
    with open(d / METRICS_FILE, "a") as fh:
        fh.writelines(f'{{"step": {20 + i}, "m{i}": 1.0}}\n' for i in range(MAX_METRICS + 3))
    app = _app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        assert pane.snapshots["wide"].ignored_metrics == 4  # "loss" took one of the places
        footer = str(pane.query_one("#curves-footer", Static).render())
        assert f"metric cap {MAX_METRICS:,} reached: 4 names ignored" in footer
