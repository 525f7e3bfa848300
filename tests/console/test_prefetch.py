"""The prefetch reads the newest run before the console mounts, and warms big runs in a child."""

from __future__ import annotations

from pathlib import Path

from tests.console.conftest import settle
from trainledger.console import prefetch as prefetch_mod
from trainledger.console.app import TrainledgerApp
from trainledger.console.panes.curves import CurvesPane
from trainledger.console.prefetch import Prefetch
from trainledger.engines.metrics.cache import cache_is_fresh
from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.workspace import METRICS_FILE, Workspace, init_workspace


def _run(ws: Workspace, run_id: str, rows: int, started: float) -> Path:
    w = MetricsWriter(ws, run_id=run_id)
    w.update(started=started)
    for step in range(rows):
        w.log({"loss": 1.0 / (step + 1)}, step=step)
    w.finish()
    return w.dir


def test_prefetch_reads_the_newest_run(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    _run(ws, "old", 10, started=1.0)
    _run(ws, "new", 20, started=2.0)
    pf = Prefetch(ws).start()
    assert pf.done.wait(10)
    assert sorted(r.id for r in pf.runs or []) == ["new", "old"]
    assert list(pf.series) == ["new"] and pf.series["new"].snapshot().n == 20


def test_big_run_is_warmed_in_a_child_process(tmp_path: Path, monkeypatch) -> None:
    ws = init_workspace(tmp_path / "ws")
    run_dir = _run(ws, "big", 120_000, started=1.0)
    monkeypatch.setattr(prefetch_mod, "WARM_BYTES", 1024)
    pf = Prefetch(ws).start()
    assert pf.done.wait(60)
    assert cache_is_fresh(ws.cache_dir, "big", run_dir / METRICS_FILE)
    assert pf.series["big"].snapshot().n == 120_000


async def test_console_draws_the_prefetched_run_and_catches_up(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    run_dir = _run(ws, "r", 50, started=1.0)
    pf = Prefetch(ws).start()
    assert pf.done.wait(10)
    with open(run_dir / METRICS_FILE, "ab") as fh:  # written after the prefetch read
        fh.write(b'{"step": 50, "loss": 0.01}\n')
    app = TrainledgerApp(ws, theme="trainledger-dark", watch=False, prefetch=pf)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        pane = app.query_one(CurvesPane)
        assert pane.series["r"] is pf.series["r"]  # adopted, not read twice
        assert pane.snapshots["r"].n == 51


def test_prefetch_of_a_fifo_run_ends_and_says_why(tmp_path: Path) -> None:
    import os

    ws = init_workspace(tmp_path / "ws")
    _run(ws, "old", 10, started=1.0)
    new = _run(ws, "new", 5, started=2.0)
    (new / METRICS_FILE).unlink()
    os.mkfifo(new / METRICS_FILE)
    zero = ws.runs_dir / "zero"
    zero.mkdir()
    (zero / "run.json").symlink_to("/dev/zero")
    pf = Prefetch(ws).start()
    assert pf.done.wait(30), "the prefetch blocked on a FIFO"
    runs = {r.id: r for r in pf.runs or []}
    assert set(runs) == {"new", "old", "zero"} and "character device" in (runs["zero"].problem or "")
    snap = pf.series["new"].snapshot()
    assert snap.n == 0 and "FIFO" in (snap.problem or "")
