from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainledger.engines.metrics.series import RunSeries
from trainledger.engines.metrics.view import metric_view, x_of_step
from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.workspace import init_workspace


@pytest.fixture
def snap(tmp_path: Path):
    ws = init_workspace(tmp_path)
    with MetricsWriter(ws, run_id="r") as w:
        for epoch in range(1, 11):
            val = 0.3 + abs(epoch - 3) * 0.1  # best at epoch 3
            w.log({"val/loss": val}, step=epoch * 10, epoch=epoch, time_=100.0 + epoch)
    series = RunSeries(w.dir)
    series.refresh()
    return series.snapshot()


def test_view_on_each_axis_marks_the_best_point(snap) -> None:
    by_step = metric_view(snap, "val/loss", "step")
    assert by_step is not None and by_step.best_xy == (30.0, pytest.approx(0.3))
    assert by_step.summary is not None and not by_step.summary.best_is_last
    assert metric_view(snap, "val/loss", "epoch").best_xy == (3.0, pytest.approx(0.3))
    by_time = metric_view(snap, "val/loss", "time")
    assert by_time.best_xy == (2.0, pytest.approx(0.3))  # seconds since the first row
    assert np.array_equal(by_time.x, np.arange(10.0))


def test_smoothing_changes_the_line_not_the_claims(snap) -> None:
    raw = metric_view(snap, "val/loss", "step")
    smooth = metric_view(snap, "val/loss", "step", smoothing=0.9)
    assert not np.allclose(raw.y, smooth.y)
    assert smooth.summary == raw.summary and smooth.best_xy == raw.best_xy


def test_missing_metric_and_step(snap) -> None:
    assert metric_view(snap, "nope") is None
    assert x_of_step(snap, 12345.0, "epoch") is None
