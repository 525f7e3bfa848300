"""export_runs: the chart's rows as CSV or JSON, wide or long, values read back exactly."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from trainledger.engines.metrics.export import export_runs
from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.workspace import Workspace

VALUES = [0.1, 1 / 3, 2.5e-12, 123456789.123456789, -0.0078125]


def _runs(ws: Workspace) -> None:
    with MetricsWriter(ws, "a", model="mlp") as w:
        for s, v in enumerate(VALUES):
            w.log({"train/loss": v, "lr": 1e-3}, step=s, epoch=s / 2, time_=1700000000.25 + s)
            if s % 2:
                w.log({"val/loss": v * 2}, step=s, epoch=s / 2, time_=1700000000.5 + s)  # same step: merged
    with MetricsWriter(ws, "b", model="mlp") as w:
        w.log({"train/loss": 9.0, "val/acc": 0.5}, step=10)
    with open(ws.run_dir("a") / "metrics.jsonl", "ab") as fh:  # malformed lines: left out, as the chart does
        fh.write(b'not json\n{"step": 99, "train/loss": [7]}\n')


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_wide_csv_one_row_per_run_and_step(ws: Workspace) -> None:
    _runs(ws)
    text = export_runs(ws, ["a", "b"])
    header = text.splitlines()[0]
    assert header == "run,step,epoch,time,lr,train/loss,val/acc,val/loss"
    rows = _csv(text)
    assert [(r["run"], r["step"]) for r in rows] == [("a", str(s)) for s in range(5)] + [("b", "10")]
    for s, v in enumerate(VALUES):
        r = rows[s]
        assert float(r["train/loss"]) == v  # repr: reads back as the same float
        assert float(r["epoch"]) == s / 2
        assert r["val/loss"] == (repr(v * 2) if s % 2 else "")
        assert float(r["time"]) == 1700000000.25 + s or float(r["time"]) == 1700000000.5 + s
        assert r["val/acc"] == ""
    assert rows[5]["epoch"] == "" and rows[5]["val/acc"] == "0.5" and rows[5]["lr"] == ""
    assert "99" not in {r["step"] for r in rows}


def test_long_csv_one_row_per_value(ws: Workspace) -> None:
    _runs(ws)
    text = export_runs(ws, ["a", "b"], layout="long", metrics_regex="loss$")
    assert text.splitlines()[0] == "run,step,epoch,time,metric,value"
    rows = _csv(text)
    assert {r["metric"] for r in rows} == {"train/loss", "val/loss"}
    assert len(rows) == 5 + 2 + 1
    assert [float(r["value"]) for r in rows if r["run"] == "a" and r["metric"] == "train/loss"] == VALUES


def test_json_layouts(ws: Workspace) -> None:
    _runs(ws)
    wide = json.loads(export_runs(ws, ["b", "a"], fmt="json", metrics_regex="^train/"))
    assert wide[0] == {"run": "b", "step": 10, "epoch": None, "time": wide[0]["time"], "train/loss": 9.0}
    assert [r["train/loss"] for r in wide[1:]] == VALUES
    long = json.loads(export_runs(ws, ["a"], fmt="json", layout="long"))
    assert set(long[0]) == {"run", "step", "epoch", "time", "metric", "value"}
    assert sum(r["metric"] == "val/loss" for r in long) == 2


def test_hostile_metric_names_are_plain_cells(ws: Workspace, tmp_path: Path) -> None:
    with MetricsWriter(ws, "h", model="mlp") as w:
        w.log({"=HYPERLINK(\"http://x\")": 1.0, "a,b \"q\"": 2.0, "esc\x1b[31m": 3.0, "run": 4.0}, step=0)
    text = export_runs(ws, ["h"])
    assert "\x1b" not in text
    (row,) = _csv(text)
    assert row["'=HYPERLINK(\"http://x\")"] == "1.0"  # a spreadsheet shows text, runs no formula
    assert row["a,b \"q\""] == "2.0" and row["esc\u241b[31m"] == "3.0" and row["run (metric)"] == "4.0"
    assert row["run"] == "h"


def test_bad_input(ws: Workspace) -> None:
    _runs(ws)
    with pytest.raises(ValueError, match="no run nope"):
        export_runs(ws, ["nope"])
    with pytest.raises(ValueError, match="invalid run id"):
        export_runs(ws, ["../a"])
    with pytest.raises(ValueError, match="not a regular expression"):
        export_runs(ws, ["a"], metrics_regex="(")
    with pytest.raises(ValueError, match="format"):
        export_runs(ws, ["a"], fmt="xlsx")
    with pytest.raises(ValueError, match="layout"):
        export_runs(ws, ["a"], layout="tall")
