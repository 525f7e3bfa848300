"""bookkeeping.Bookkeeper on its own: the one definition of best, patience, checkpoint pacing
and the train-row window, with a real MetricsWriter and no torch."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import pytest

from tests.engines.conftest import jsonl
from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.training.bookkeeping import (
    BEST_CHECKPOINT,
    Bookkeeper,
    Window,
    is_better,
)
from trainledger.engines.workspace import Workspace

NAN, INF = math.nan, math.inf


def feed(
    ws: Workspace, values: list[float], direction: str | None = "min", patience: int = 0, **kw: Any
) -> tuple[Bookkeeper, list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate `values` as epochs 1, 2, ... (step 10 x epoch); (book, saved infos, events)."""
    directions = {"val/m": direction} if direction else {}
    book = Bookkeeper("toy", "val/m", directions, patience=patience, last_every=0.0, **kw)
    saved: list[dict[str, Any]] = []
    with MetricsWriter(ws, "r", model="toy") as writer:
        for epoch, value in enumerate(values, start=1):
            book.validated({"val/m": value, "val/other": 1.0}, step=10 * epoch, epoch=epoch, writer=writer,
                           save_best=saved.append)  # fmt: skip
    return book, saved, jsonl(ws.run_dir("r") / "events.jsonl")


@pytest.mark.parametrize(
    ("value", "best", "direction", "expected"),
    [
        (1.0, None, "min", True),
        (1.0, None, "max", True),
        (1.0, 2.0, "min", True),
        (3.0, 2.0, "min", False),
        (3.0, 2.0, "max", True),
        (1.0, 2.0, "max", False),
        (2.0, 2.0, "min", False),  # a tie keeps the earlier best
        (2.0, 2.0, "max", False),
        (NAN, None, "min", False),  # only a finite value can be best
        (NAN, 2.0, "max", False),
        (-INF, 2.0, "min", False),
        (INF, 2.0, "max", False),
        (5.0, NAN, "min", True),  # a non-finite stored best counts as none
    ],
)
def test_is_better(value: float, best: float | None, direction: str, expected: bool) -> None:
    assert is_better(value, best, direction) is expected


def test_min_direction_best_events_and_checkpoint_infos(ws: Workspace) -> None:
    book, saved, events = feed(ws, [3.0, 2.0, 2.0, 2.5, 1.0])
    bests = [e for e in events if e["kind"] == "best"]
    assert [(e["epoch"], e["value"], e["previous"]) for e in bests] == [(1, 3.0, None), (2, 2.0, 3.0), (5, 1.0, 2.0)]
    assert all(e["checkpoint"] == BEST_CHECKPOINT and e["metric"] == "val/m" for e in bests)
    assert [(s["epoch"], s["step"], s["metrics"]["val/m"], s["model"]) for s in saved] == [
        (1, 10, 3.0, "toy"), (2, 20, 2.0, "toy"), (5, 50, 1.0, "toy")]  # fmt: skip
    assert book.best == {"metric": "val/m", "value": 1.0, "epoch": 5, "step": 50}
    assert book.since_best == 0


def test_max_direction_and_ties_keep_the_earliest(ws: Workspace) -> None:
    book, saved, events = feed(ws, [0.5, 0.7, 0.7, 0.6], direction="max")
    assert [e["epoch"] for e in events if e["kind"] == "best"] == [1, 2]
    assert book.best is not None and book.best["epoch"] == 2 and book.best["value"] == 0.7
    assert book.since_best == 2 and len(saved) == 2


def test_undeclared_direction_is_min_and_an_unknown_one_is_refused(ws: Workspace) -> None:
    book, _, _ = feed(ws, [2.0, 1.0, 3.0], direction=None)
    assert book.direction == "min" and book.best is not None and book.best["value"] == 1.0
    with pytest.raises(ValueError):
        Bookkeeper("toy", "val/m", {"val/m": "minimize"}, patience=0, last_every=0.0)


def test_nan_and_inf_are_never_best(ws: Workspace) -> None:
    book, saved, events = feed(ws, [NAN, INF, 4.0, NAN, -INF], patience=0)
    assert [e["epoch"] for e in events if e["kind"] == "best"] == [3]
    assert [s["epoch"] for s in saved] == [3]
    assert book.best is not None and book.best["value"] == 4.0 and book.since_best == 2


def test_patience_counts_validations_since_the_best(ws: Workspace) -> None:
    book = Bookkeeper("toy", "val/m", {"val/m": "min"}, patience=2, last_every=0.0)
    with MetricsWriter(ws, "p", model="toy") as writer:
        due = []
        for epoch, value in enumerate([3.0, 2.0, 2.5, 2.0, 1.5, 1.6, 1.7], start=1):
            book.validated({"val/m": value}, step=epoch, epoch=epoch, writer=writer, save_best=lambda info: None)
            due.append(book.early_stop_due())
        book.write_early_stop(writer, step=7, epoch=7)
    assert due == [False, False, False, True, False, False, True]
    stop = [e for e in jsonl(ws.run_dir("p") / "events.jsonl") if e["kind"] == "early_stop"]
    assert len(stop) == 1
    assert (stop[0]["best_epoch"], stop[0]["patience"], stop[0]["metric"], stop[0]["epoch"]) == (5, 2, "val/m", 7)


def test_patience_zero_never_stops_and_no_best_still_stops(ws: Workspace) -> None:
    book, _, _ = feed(ws, [5.0] * 20, patience=0)
    assert book.since_best == 19 and not book.early_stop_due()
    nan_book = Bookkeeper("toy", "val/m", {}, patience=2, last_every=0.0)
    with MetricsWriter(ws, "n", model="toy") as writer:
        for epoch in (1, 2):
            nan_book.validated({"val/m": NAN}, step=epoch, epoch=epoch, writer=writer, save_best=lambda info: None)
        assert nan_book.early_stop_due() and nan_book.best is None
        nan_book.write_early_stop(writer, step=2, epoch=2)
    (stop,) = jsonl(ws.run_dir("n") / "events.jsonl")
    assert stop["kind"] == "early_stop" and stop["best_epoch"] is None


def test_a_resumed_best_keeps_counting_patience_from_its_epoch() -> None:
    best = {"metric": "val/m", "value": 1.0, "epoch": 3, "step": 30}
    book = Bookkeeper("toy", "val/m", {"val/m": "min"}, patience=3, last_every=0.0, best=best, epochs_done=5)
    assert book.since_best == 2 and not book.early_stop_due()
    assert Bookkeeper("toy", "val/m", {}, patience=3, last_every=0.0, epochs_done=5).since_best == 0


def test_last_checkpoints_are_throttled_by_the_clock() -> None:
    now = [100.0]
    saves: list[float] = []

    def save() -> None:
        saves.append(now[0])
        now[0] += 4.0  # the save itself takes 4 s: the next one counts from its end

    book = Bookkeeper("toy", "val/m", {}, patience=0, last_every=10.0, clock=lambda: now[0])
    due = []
    for t in (105.0, 110.0, 115.0, 123.0, 124.0, 200.0):
        now[0] = t
        due.append(book.save_last_if_due(save))
    assert due == [False, True, False, False, True, True]
    assert saves == [110.0, 124.0, 200.0]
    always = Bookkeeper("toy", "val/m", {}, patience=0, last_every=0.0, clock=lambda: 0.0)
    assert all(always.save_last_if_due(lambda: None) for _ in range(3))


def test_window_means_and_reset() -> None:
    window = Window()
    window.add({"loss": 1.0, "term/a": 4.0}, 8)
    window.add({"loss": 3.0, "term/a": 2.0}, 8)
    row = window.row("train/")
    assert row["train/loss"] == 2.0 and row["train/term/a"] == 3.0
    assert row["samples_per_s"] > 0 and row["steps_per_s"] > 0
    assert row["samples_per_s"] == pytest.approx(8 * row["steps_per_s"])
    window.reset()
    window.add({"loss": 5.0}, 1)
    assert window.row("train/")["train/loss"] == 5.0 and "train/term/a" not in window.row("train/")


def test_bookkeeping_imports_no_torch_or_mlx() -> None:
    code = ("import sys, trainledger.engines.training.bookkeeping; "
            "print(sorted(m for m in ('torch', 'mlx') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
