"""`E`'s CSV: every raw row of the metric, the value drawn beside it, names that are data."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from trainledger.console.chart_export import (
    COLUMNS,
    chart_csv,
    export_path,
    export_run,
    safe_filename,
    write_export,
)
from trainledger.engines.metrics.series import RunSeries
from trainledger.engines.metrics.view import metric_view


def _run(tmp_path: Path, rows: list[dict], name: str = "r1"):  # noqa: ANN202 - a SeriesSnapshot
    d = tmp_path / name
    d.mkdir()
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    series = RunSeries(d)
    series.refresh()
    return series.snapshot()


def _read(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_rows_raw_and_drawn_match_the_chart(tmp_path: Path) -> None:
    rows = [{"step": i, "epoch": i // 5, "time": 1000.0 + i, "loss": 1.0 / (i + 1)} for i in range(20)]
    rows.insert(3, {"step": 99, "acc": 0.5})  # a row without the metric: not exported
    snap = _run(tmp_path, rows)
    run = export_run(snap, "loss", "first run", smoothing=0.6)
    out = _read(chart_csv("loss", [run]))
    assert list(out[0]) == list(COLUMNS)
    assert len(out) == 20
    assert out[0]["step"] == "0" and out[0]["epoch"] == "0" and out[0]["time"] == "1000"
    assert [float(r["raw"]) for r in out] == [1.0 / (i + 1) for i in range(20)]  # exact
    mv = metric_view(snap, "loss", "step", 0.6)
    assert mv is not None
    assert np.array_equal(np.array([float(r["drawn"]) for r in out]), mv.y)  # what the chart holds
    assert {r["run_id"] for r in out} == {"r1"} and {r["name"] for r in out} == {"first run"}


def test_undrawn_rows_have_an_empty_drawn_cell(tmp_path: Path) -> None:
    rows = [{"step": i, "v": v} for i, v in enumerate([2.0, -1.0, 0.0, 3.0, 4.0])]
    snap = _run(tmp_path, rows)
    logged = _read(chart_csv("v", [export_run(snap, "v", "r", log_y=True)]))
    assert [r["drawn"] for r in logged] == ["2", "", "", "3", "4"]  # log-y hides values <= 0
    zoomed = _read(chart_csv("v", [export_run(snap, "v", "r", zoom=(1.0, 3.0))]))
    assert [r["drawn"] for r in zoomed] == ["", "-1", "0", "3", ""]
    assert [r["raw"] for r in zoomed] == ["2", "-1", "0", "3", "4"]  # raw rows are all there


def test_names_are_data_quoted_and_defused(tmp_path: Path) -> None:
    snap = _run(tmp_path, [{"step": 1, 'we,ird "m"\nx': 1.5}])
    metric = 'we,ird "m"\nx'
    run = export_run(snap, metric, '=HYPERLINK("http://x")\x1b[31m')
    text = chart_csv(metric, [run])
    out = _read(text)
    assert len(out) == 1
    assert out[0]["name"].startswith("'=")  # no spreadsheet runs it as a formula
    assert "\x1b" not in text
    assert "\n" not in out[0]["metric"] and "," in out[0]["metric"] and '"' in out[0]["metric"]
    assert out[0]["raw"] == "1.5"


@pytest.mark.parametrize(
    "name,want",
    [("val/loss", "val_loss"), ("../../etc/passwd", "etc_passwd"), ("", "metric"), ("...", "metric"),
     ("a b\x00c", "a_b_c"), ("ünï", "n"), ("\x1b\x07", "metric")],
)
def test_safe_filename(name: str, want: str) -> None:
    assert safe_filename(name) == want


def test_write_export_in_the_workspace_never_overwrites(tmp_path: Path) -> None:
    snap = _run(tmp_path, [{"step": i, "val/loss": 0.5 + i} for i in range(3)])
    run = export_run(snap, "val/loss", "r")
    now = 1_795_430_000.0
    first, rows = write_export(tmp_path, "val/loss", [run], now=now)
    second, _ = write_export(tmp_path, "val/loss", [run], now=now)
    assert rows == 3
    assert first == tmp_path / "exports" / "val_loss-20261123T103320Z.csv"
    assert second != first and second.name == "val_loss-20261123T103320Z-2.csv"
    assert first.read_bytes().startswith(b"run_id,name,metric,step,epoch,time,raw,drawn\r\n")
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no temporary left
    assert export_path(tmp_path, "val/loss", now).name.endswith("-3.csv")


def test_a_run_without_the_metric_exports_no_rows(tmp_path: Path) -> None:
    snap = _run(tmp_path, [{"step": 1, "acc": 0.5}])
    run = export_run(snap, "loss", "r")
    assert len(run.raw) == 0 and len(_read(chart_csv("loss", [run]))) == 0


async def test_E_in_the_curves_pane_writes_the_chart_and_says_where(tmp_path: Path) -> None:
    from tests.console.conftest import CLOCK, settle
    from trainledger.console.app import TrainledgerApp
    from trainledger.console.panes.curves import CurvesPane
    from trainledger.engines.workspace import METRICS_FILE, RUN_FILE, init_workspace

    ws = init_workspace(tmp_path / "ws")
    for k, run_id in enumerate(("run-a", "run-b")):
        d = ws.runs_dir / run_id
        d.mkdir()
        (d / RUN_FILE).write_text(json.dumps({"status": "finished", "started": 1000.0 + k,
                                              "name": f'lr=0.{k}, "quoted"'}))
        (d / METRICS_FILE).write_text("".join(
            json.dumps({"step": i, "epoch": i // 5, "time": 2000.0 + i, "val/loss": 1.0 / (i + 1 + k)}) + "\n"
            for i in range(10 + k)))
    app = TrainledgerApp(ws, theme="trainledger-dark", watch=False, clock=lambda: CLOCK)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        await pilot.press("space", "down", "s")  # compare both, EMA 0.6
        await settle(pilot)
        assert pane.state.metric == "val/loss" and pane.state.smoothing == 0.6
        await pilot.press("E")
        await settle(pilot)
        path = pane.last_export
        assert path.parent == ws.root / "exports" and path.name.startswith("val_loss-")
        assert str(path) in pane.last_export_said and "21 rows" in pane.last_export_said
        out = _read(path.read_text(encoding="utf-8"))
        assert len(out) == 21
        assert {r["name"] for r in out} == {'lr=0.0, "quoted"', 'lr=0.1, "quoted"'}
        assert {r["metric"] for r in out} == {"val/loss"}
        first_b = next(r for r in out if r["run_id"] == "run-b")
        assert first_b["raw"] == repr(1.0 / 2) and first_b["drawn"] == first_b["raw"]  # EMA starts there
        second_b = [r for r in out if r["run_id"] == "run-b"][1]
        assert float(second_b["drawn"]) != float(second_b["raw"])  # smoothed, as drawn
