"""RunSeries: growing columns from a run folder, snapshots, events, resets."""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

import msgspec
import numpy as np
import pytest

from trainledger.engines.metrics import columns
from trainledger.engines.metrics.series import RunSeries
from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.workspace import init_workspace


def append(path: Path, rows: list[dict] | bytes) -> None:
    data = rows if isinstance(rows, bytes) else b"".join(msgspec.json.encode(r) + b"\n" for r in rows)
    with open(path, "ab") as fh:
        fh.write(data)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs" / "r1"
    d.mkdir(parents=True)
    (d / "metrics.jsonl").write_bytes(b"")
    return d


def test_grows_incrementally_with_writer(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    with MetricsWriter(ws, run_id="run-a") as w:
        rs = RunSeries(w.dir)
        assert rs.refresh().new_rows == 0
        s0 = rs.snapshot()
        assert s0.n == 0 and s0.run_id == "run-a"
        for i in range(5):
            w.log({"train/loss": 1.0 / (i + 1)}, epoch=i / 5)
        w.event("best", "new best", **{"value": 0.2})
        res = rs.refresh()
        assert res.new_rows == 5 and res.new_events == 1 and not res.reset
        s1 = rs.snapshot()
        assert s1.n == 5 and s1.version > s0.version
        assert s1.metric_names() == ["train/loss"]
        x, y = s1.xy("train/loss")
        assert np.array_equal(x, np.arange(5.0)) and np.allclose(y, 1 / np.arange(1, 6))
        ev = s1.events[0]
        assert ev.kind == "best" and ev.message == "new best" and ev.step == 4.0
        assert ev.fields == {"value": 0.2} and ev.time is not None
        w.log({"train/loss": 0.1, "val/loss": 0.3})
        rs.refresh()
        s2 = rs.snapshot()
        assert s2.n == 6 and s1.n == 5  # the old snapshot is unchanged
        assert np.isnan(s2.metrics["val/loss"][:5]).all() and s2.metrics["val/loss"][5] == 0.3
    unchanged = rs.refresh()
    assert unchanged.new_rows == 0 and rs.snapshot().version == s2.version


def test_snapshots_are_immutable_views(run_dir: Path) -> None:
    rs = RunSeries(run_dir)
    append(run_dir / "metrics.jsonl", [{"step": i, "a": i} for i in range(10)])
    rs.refresh()
    snap = rs.snapshot()
    with pytest.raises(ValueError):
        snap.metrics["a"][0] = 5.0
    before = snap.metrics["a"].copy()
    for k in range(20):  # many appends force reallocation
        append(run_dir / "metrics.jsonl", [{"step": 10 + 100 * k + i, "a": -1} for i in range(100)])
        rs.refresh()
    assert np.array_equal(snap.metrics["a"], before) and snap.n == 10
    assert rs.snapshot().n == 2010


def test_missing_step_is_previous_plus_one(run_dir: Path) -> None:
    append(run_dir / "metrics.jsonl", [{"a": 1}, {"a": 2}, {"step": 10, "a": 3}, {"a": 4}])
    rs = RunSeries(run_dir)
    rs.refresh()
    append(run_dir / "metrics.jsonl", [{"a": 5}, {"step": None, "a": 6}, {"step": "x", "a": 7}])
    rs.refresh()
    snap = rs.snapshot()  # a null step is a missing one; a string step makes the line malformed
    assert np.array_equal(snap.step, [0, 1, 10, 11, 12, 13]) and snap.malformed == 1


def test_xy_epoch_and_time(run_dir: Path) -> None:
    append(
        run_dir / "metrics.jsonl",
        [
            {"step": 0, "time": 100.0, "epoch": 0, "a": 1},
            {"step": 1, "time": 101.5, "a": 2},
            {"step": 2, "time": 103.0, "epoch": 1, "a": None},
            {"step": 3, "time": 104.0, "epoch": 1.5, "a": 4},
        ],
    )
    rs = RunSeries(run_dir)
    rs.refresh()
    s = rs.snapshot()
    x, y = s.xy("a", "time")
    assert np.array_equal(x, [0.0, 1.5, 4.0]) and np.array_equal(y, [1, 2, 4])
    x, y = s.xy("a", "epoch")
    assert np.array_equal(x, [0.0, 1.5]) and np.array_equal(y, [1, 4])
    assert s.xy("nope")[0].size == 0
    with pytest.raises(ValueError):
        s.xy("a", "wall")


def test_malformed_lines_from_both_files(run_dir: Path) -> None:
    append(run_dir / "metrics.jsonl", b'{"step":0,"a":1}\nbroken\n{"step":1,"a":NaN}\n')
    (run_dir / "events.jsonl").write_bytes(b'{"kind":"phase","message":"x"}\n[1]\n{}\n')
    rs = RunSeries(run_dir)
    res = rs.refresh()
    s = rs.snapshot()
    assert res.malformed == 2 and s.malformed == 2
    assert s.malformed_examples == ("line 2: not JSON",)
    assert s.n == 2 and np.isnan(s.metrics["a"][1])
    assert [e.kind for e in s.events] == ["phase", "event"]  # missing fields defaulted
    assert s.events[1].step == 1.0 and s.events[1].message == "" and s.events[1].epoch is None
    append(run_dir / "metrics.jsonl", b'{"step":2}\n\nbad again\n')
    rs.refresh()
    assert rs.snapshot().malformed_examples[-1] == "line 6: not JSON"


def test_line_numbers_after_a_big_read(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainledger.engines.metrics import series

    monkeypatch.setattr(series, "_COUNT_LINES_MAX", 10)  # pretend the first read was big
    append(run_dir / "metrics.jsonl", [{"step": i} for i in range(50)])
    rs = RunSeries(run_dir)
    rs.refresh()
    append(run_dir / "metrics.jsonl", b"{oops\n")
    rs.refresh()
    assert rs.snapshot().malformed_examples == ("line 51: not JSON",)


def test_truncation_drops_and_rereads(run_dir: Path) -> None:
    p = run_dir / "metrics.jsonl"
    append(p, [{"step": i, "a": i} for i in range(10)])
    rs = RunSeries(run_dir)
    rs.refresh()
    p.write_bytes(b"")
    append(p, [{"step": 0, "b": 7}])
    res = rs.refresh()
    s = rs.snapshot()
    assert res.reset and s.n == 1 and s.metric_names() == ["b"]


def test_replacement_and_deletion(run_dir: Path) -> None:
    p = run_dir / "metrics.jsonl"
    append(p, [{"step": i, "a": i} for i in range(10)])
    rs = RunSeries(run_dir)
    rs.refresh()
    tmp = run_dir / "new.tmp"
    tmp.write_bytes(b"".join(msgspec.json.encode({"step": i, "c": 1}) + b"\n" for i in range(20)))
    os.replace(tmp, p)
    res = rs.refresh()
    assert res.reset and rs.snapshot().n == 20 and rs.snapshot().metric_names() == ["c"]
    p.unlink()
    res = rs.refresh()
    s = rs.snapshot()
    assert res.deleted and s.deleted and s.n == 20  # data kept, shown as deleted
    append(p, [{"step": 0, "d": 1}])
    res = rs.refresh()
    s = rs.snapshot()
    assert res.reset and not s.deleted and s.n == 1 and s.metric_names() == ["d"]


def test_events_reset_with_their_file(run_dir: Path) -> None:
    ev = run_dir / "events.jsonl"
    ev.write_bytes(b'{"kind":"a","step":1}\n{"kind":"b","step":2}\n')
    rs = RunSeries(run_dir)
    rs.refresh()
    assert len(rs.snapshot().events) == 2
    ev.write_bytes(b'{"kind":"c","step":3,"epoch":NaN,"time":5}\n')
    rs.refresh()
    e = rs.snapshot().events
    assert [x.kind for x in e] == ["c"] and e[0].epoch is None and e[0].time == 5.0


def test_cancelled_refresh_resumes(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(columns, "CHUNK_LINES", 10)
    monkeypatch.setattr(columns, "MIN_CHUNK_BYTES", 1)
    append(run_dir / "metrics.jsonl", [{"step": i, "a": i} for i in range(500)])
    rs = RunSeries(run_dir)
    cancel = threading.Event()
    cancel.set()
    res = rs.refresh(cancel)
    assert res.cancelled and res.new_rows == 0 and rs.snapshot().n == 0
    res = rs.refresh()
    assert not res.cancelled and res.new_rows == 500
    assert np.array_equal(rs.snapshot().metrics["a"], np.arange(500.0))


def test_concurrent_refreshes_do_not_interleave(run_dir: Path) -> None:
    p = run_dir / "metrics.jsonl"
    rs = RunSeries(run_dir)
    stop = threading.Event()

    def refresher() -> None:
        while not stop.is_set():
            rs.refresh()

    threads = [threading.Thread(target=refresher) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for k in range(50):
            append(p, [{"step": k * 20 + i, "a": k * 20 + i} for i in range(20)])
    finally:
        stop.set()
        for t in threads:
            t.join()
    rs.refresh()
    s = rs.snapshot()
    assert s.n == 1000 and np.array_equal(s.step, np.arange(1000.0))
    assert np.array_equal(s.metrics["a"], np.arange(1000.0))


def test_python_json_nan_rows(run_dir: Path) -> None:
    rows = [{"step": i, "loss": float("nan") if i == 2 else float(i)} for i in range(4)]
    append(run_dir / "metrics.jsonl", b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    rs = RunSeries(run_dir)
    rs.refresh()
    x, y = rs.snapshot().xy("loss")
    assert np.array_equal(x, [0, 1, 3]) and not any(math.isnan(v) for v in y)
