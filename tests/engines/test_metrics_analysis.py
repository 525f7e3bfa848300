"""Directions from names, and best/last summaries."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from trainledger.engines.metrics.analysis import direction_for, summarize, summarize_all
from trainledger.engines.metrics.downsample import minmax_buckets
from trainledger.engines.metrics.series import RunSeries, SeriesSnapshot


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("val/loss", "min"),
        ("train_loss", "min"),
        ("Train/Loss", "min"),
        ("valLoss", "min"),
        ("eval/perplexity", "min"),
        ("val/ppl", "min"),
        ("rmse", "min"),
        ("kl_div", "min"),
        ("cross_entropy", "min"),
        ("val/cosine", "max"),
        ("coverage/hash", "max"),
        ("val/acc", "max"),
        ("top1_accuracy", "max"),
        ("acc@1", "max"),
        ("mAP@50", "max"),
        ("f1", "max"),
        ("codebook/entropy", "max"),
        ("active/units", "max"),
        ("lr", None),
        ("train/learning_rate", None),
        ("beta", None),
        ("epoch_time", None),
        ("samples_per_s", None),
        ("throughput", None),
        ("grad_norm", None),
    ],
)
def test_direction_for(name: str, want: str | None) -> None:
    assert direction_for(name) == want


def test_declared_direction_wins() -> None:
    assert direction_for("val/loss", {"val/loss": "max"}) == "max"
    assert direction_for("score", {"score": "min"}) == "min"
    assert direction_for("val/acc", {"val/acc": "none"}) is None
    assert direction_for("val/acc", {"other": "min"}) == "max"


def snapshot_of(tmp_path: Path, rows: list[dict]) -> SeriesSnapshot:
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in rows))
    rs = RunSeries(run_dir)
    rs.refresh()
    return rs.snapshot()


def test_best_before_last_over_106_epochs(tmp_path: Path) -> None:
    rows = []
    step = 0
    for epoch in range(1, 107):
        for _ in range(3):
            rows.append({"step": step, "epoch": epoch, "train/loss": 1.0 / epoch})
            step += 1
        val = 0.5 if epoch == 6 else 0.6 + 0.001 * epoch
        rows.append({"step": step, "epoch": epoch, "val/loss": val, "val/acc": epoch / 200})
        step += 1
    snap = snapshot_of(tmp_path, rows)
    s = summarize(snap, "val/loss")
    assert s is not None and s.direction == "min" and s.count == 106
    assert s.best == 0.5 and s.best_epoch == 6 and not s.best_is_last
    assert s.last_epoch == 106 and s.last == pytest.approx(0.706) and s.last_step == step - 1
    assert s.min == 0.5 and s.max == pytest.approx(0.706)
    acc = summarize(snap, "val/acc")
    assert acc is not None and acc.direction == "max" and acc.best_is_last and acc.best_epoch == 106
    every = summarize_all(snap)
    assert list(every) == ["train/loss", "val/acc", "val/loss"]


def test_ties_earliest_step_and_no_direction(tmp_path: Path) -> None:
    rows = [
        {"step": 0, "val/loss": 0.3, "lr": 0.1},
        {"step": 1, "val/loss": 0.2, "lr": 0.2},
        {"step": 2, "val/loss": 0.25},
        {"step": 3, "val/loss": 0.2, "lr": None, "dead": None},
    ]
    snap = snapshot_of(tmp_path, rows)
    s = summarize(snap, "val/loss")
    assert s is not None and s.best_step == 1 and not s.best_is_last and s.best_epoch is None
    lr = summarize(snap, "lr")
    assert lr is not None and lr.direction is None and lr.best is None and lr.best_is_last
    assert lr.last == 0.2 and lr.last_step == 1 and lr.count == 2
    assert summarize(snap, "dead") is None and summarize(snap, "missing") is None
    assert "dead" not in summarize_all(snap)


@pytest.mark.slow
def test_spike_in_a_million_points_survives(tmp_path: Path) -> None:
    n = 1_000_000
    step = np.arange(n, dtype=float)
    loss = np.full(n, 0.82)
    loss[400_000:400_100] = 10.03  # one epoch of 100 steps spikes
    d = minmax_buckets(step, loss, 100)
    assert d.ymax.max() == 10.03 and d.ymin.min() == 0.82
