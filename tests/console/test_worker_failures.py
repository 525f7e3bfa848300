"""A pane worker that raises leaves nothing stuck: the error is said, the next change reads again."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from trainledger.console.app import TrainledgerApp
from trainledger.console.panes.capture import CapturePane
from trainledger.console.panes.curves import CurvesPane
from trainledger.engines.capture.sessions import SessionScanner
from trainledger.engines.metrics.series import RunSeries
from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.workspace import init_workspace


async def _until(pilot, check, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await pilot.pause(0.05)


def _notes(app: TrainledgerApp) -> list[str]:
    got: list[str] = []
    real = app.notify

    def notify(message: str, **kwargs):  # type: ignore[no-untyped-def]
        got.append(message)
        return real(message, **kwargs)

    app.notify = notify  # type: ignore[method-assign]
    return got


async def test_a_series_read_that_raises_is_said_and_the_next_write_reads_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = init_workspace(tmp_path / "ws")
    with MetricsWriter(ws, run_id="r1", model="m") as w:
        w.log({"train/loss": 1.0}, step=0)
    metrics = ws.run_dir("r1") / "metrics.jsonl"
    real = RunSeries.refresh
    calls = {"n": 0}
    broken = {"on": False}

    def refresh(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if broken["on"]:  # the disk stays gone until the test mends it
            raise OSError("the disk went away")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RunSeries, "refresh", refresh)
    app = TrainledgerApp(ws, watch=True)
    notes = _notes(app)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(CurvesPane)
        await _until(pilot, lambda: "r1" in pane.snapshots and pane.snapshots["r1"].n == 1)
        broken["on"] = True
        with metrics.open("a") as fh:
            fh.write(json.dumps({"step": 1, "train/loss": 0.5}) + "\n")
        await _until(pilot, lambda: "r1" in pane.read_errors)
        assert any("r1" in n and "the disk went away" in n for n in notes), notes
        await _until(pilot, lambda: "r1" not in pane._inflight)  # noqa: SLF001 - the fault this test is about
        failed = calls["n"]
        await pilot.pause(1.0)  # no change on disk: a failed read is not retried in a loop
        assert calls["n"] - failed <= 1, (failed, calls["n"])  # one late watch event at most
        broken["on"] = False
        with metrics.open("a") as fh:  # a good write: read again, the error clears
            fh.write(json.dumps({"step": 2, "train/loss": 0.25}) + "\n")
        await _until(pilot, lambda: pane.snapshots["r1"].n == 3 and "r1" not in pane.read_errors)


async def test_a_capture_scan_that_raises_is_said_and_the_next_change_scans_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = init_workspace(tmp_path / "ws")
    real = SessionScanner.scan
    calls = {"n": 0}

    def scan(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("a scan broke")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SessionScanner, "scan", scan)
    app = TrainledgerApp(ws, watch=True)
    notes = _notes(app)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        await _until(pilot, lambda: bool(app.query(CapturePane)))
        pane = app.query_one(CapturePane)
        await _until(pilot, lambda: pane.scan_error is not None)
        assert any("a scan broke" in n for n in notes), notes
        (ws.captures_dir / "s1.jsonl").write_text("{}\n")
        await _until(pilot, lambda: pane.scan_error is None and pane.snapshot is not None
                     and pane.snapshot.get("s1") is not None)  # fmt: skip
