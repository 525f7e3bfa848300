"""A run list row's progress read from the ends of metrics.jsonl agrees with a full parse."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from trainledger.engines.metrics.brief import RunBrief, brief_of, read_brief
from trainledger.engines.metrics.series import RunSeries
from trainledger.engines.workspace import METRICS_FILE


def _write(d: Path, rows: int, extra: dict | None = None) -> None:
    d.mkdir(parents=True, exist_ok=True)
    with open(d / METRICS_FILE, "w") as fh:
        for i in range(rows):
            row = {"step": i * 2, "epoch": i // 100, "time": 1000.0 + i, "loss": 1 / (i + 1)}
            fh.write(json.dumps({**row, **(extra or {})}) + "\n")
        fh.write(json.dumps({"val": 0.5}) + "\n")  # a last row without step or epoch


def _same(a: RunBrief, b: RunBrief) -> bool:
    fields = ("step", "epoch", "first_step", "first_epoch", "last_epoch", "first_time", "last_time",
              "steps_per_s")  # fmt: skip
    return all(
        (math.isnan(getattr(a, f)) and math.isnan(getattr(b, f))) or getattr(a, f) == getattr(b, f)
        for f in fields
    )


@pytest.mark.parametrize("rows", [1, 50, 20_000])
def test_brief_from_the_ends_matches_the_parsed_run(tmp_path: Path, rows: int) -> None:
    _write(tmp_path / "r", rows, {"steps_per_s": 12.5})
    rs = RunSeries(tmp_path / "r")
    rs.refresh()
    full, ends = brief_of(rs.snapshot()), read_brief(tmp_path / "r")
    assert _same(full, ends), (full, ends)
    assert full.step == 2 * (rows - 1) + 1 and math.isnan(full.epoch)  # the filled step
    assert ends.rows >= min(2, rows + 1)


def test_large_file_reads_only_its_ends(tmp_path: Path) -> None:
    _write(tmp_path / "r", 20_000)
    assert (tmp_path / "r" / METRICS_FILE).stat().st_size > 1_000_000
    b = read_brief(tmp_path / "r", end_bytes=4096)
    assert b.first_step == 0 and b.last_epoch == 199 and b.last_time == 1000.0 + 19_999


def test_brief_of_missing_empty_and_fifo(tmp_path: Path) -> None:
    assert read_brief(tmp_path / "none").rows == 0
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / METRICS_FILE).write_bytes(b"")
    assert read_brief(tmp_path / "empty") == RunBrief(0)
    (tmp_path / "fifo").mkdir()
    os.mkfifo(tmp_path / "fifo" / METRICS_FILE)
    b = read_brief(tmp_path / "fifo")
    assert b.rows == 0 and "FIFO" in (b.problem or "")
