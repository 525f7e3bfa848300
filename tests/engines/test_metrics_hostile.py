"""Run folders that try to hang or exhaust the reader: FIFOs, /dev/zero, hostile JSON lines.

Real files and real processes: a FIFO made with os.mkfifo, a symlink to /dev/zero,
`trainledger runs` as a subprocess with a timeout, memory measured in a child process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from trainledger.engines.metrics import series as series_mod
from trainledger.engines.metrics.columns import MAX_LINE_KEYS, parse_lines
from trainledger.engines.metrics.series import MAX_METRICS, MetricMap, RunSeries
from trainledger.engines.runs import read_system
from trainledger.engines.workspace import (
    EVENTS_FILE,
    METRICS_FILE,
    RUN_FILE,
    RUN_FILE_LIMIT,
    Workspace,
    init_workspace,
    list_runs,
    read_run_info,
)

CLI = [sys.executable, "-m", "trainledger"]
DEEP = b'{"step": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"


def _good_run(ws: Workspace, run_id: str, rows: int = 5) -> Path:
    d = ws.runs_dir / run_id
    d.mkdir(parents=True)
    (d / RUN_FILE).write_text(json.dumps({"name": run_id, "status": "finished", "started": 1.0}))
    with open(d / METRICS_FILE, "w") as fh:
        for i in range(rows):
            fh.write(json.dumps({"step": i, "loss": 1.0 / (i + 1)}) + "\n")
    return d


def _in_thread(fn, *args):  # noqa: ANN001, ANN202
    """Run fn in a daemon thread: a hang fails the test instead of freezing the suite."""
    out: dict[str, object] = {}

    def target() -> None:
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - reported below
            out["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), f"{fn.__name__} blocked"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["value"]


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws")


# ------------------------------------------------------------------ not regular files
@pytest.mark.parametrize("name", [METRICS_FILE, EVENTS_FILE])
def test_fifo_in_a_run_folder_is_refused_not_waited_on(ws: Workspace, name: str) -> None:
    d = _good_run(ws, "r")
    (d / name).unlink(missing_ok=True)
    os.mkfifo(d / name)
    rs = RunSeries(d)
    _in_thread(rs.refresh)
    snap = rs.snapshot()
    assert snap.problem is not None and name in snap.problem and "FIFO" in snap.problem
    if name == EVENTS_FILE:
        assert snap.n == 5  # the metrics still read


def test_symlink_to_dev_zero_is_refused(ws: Workspace) -> None:
    d = _good_run(ws, "r")
    (d / METRICS_FILE).unlink()
    (d / METRICS_FILE).symlink_to("/dev/zero")
    (d / EVENTS_FILE).symlink_to("/dev/zero")
    rs = RunSeries(d)
    _in_thread(rs.refresh)
    snap = rs.snapshot()
    assert snap.n == 0 and "character device" in (snap.problem or "")


def test_the_problem_clears_when_the_file_becomes_regular(ws: Workspace) -> None:
    d = _good_run(ws, "r")
    (d / METRICS_FILE).rename(d / "saved")
    os.mkfifo(d / METRICS_FILE)
    rs = RunSeries(d)
    _in_thread(rs.refresh)
    assert rs.snapshot().problem
    (d / METRICS_FILE).unlink()
    (d / "saved").rename(d / METRICS_FILE)
    rs.refresh()
    assert rs.snapshot().problem is None and rs.snapshot().n == 5


@pytest.mark.parametrize("kind", ["fifo", "zero", "huge"])
def test_bad_run_json_gives_a_run_with_its_problem(ws: Workspace, kind: str) -> None:
    d = _good_run(ws, "r")
    (d / RUN_FILE).unlink()
    if kind == "fifo":
        os.mkfifo(d / RUN_FILE)
    elif kind == "zero":
        (d / RUN_FILE).symlink_to("/dev/zero")
    else:
        with open(d / RUN_FILE, "wb") as fh:
            fh.truncate(RUN_FILE_LIMIT + 1)  # sparse: no disk used
    info = _in_thread(read_run_info, d)
    assert info.id == "r" and info.problem
    assert {"fifo": "FIFO", "zero": "character device", "huge": "limit"}[kind] in info.problem
    assert [r.id for r in _in_thread(list_runs, ws)] == ["r"]


def test_system_jsonl_fifo_is_not_read(ws: Workspace) -> None:
    d = _good_run(ws, "r")
    os.mkfifo(d / "system.jsonl")
    assert _in_thread(read_system, d) is None


def test_trainledger_runs_does_not_hang_on_fifos_or_dev_zero(ws: Workspace) -> None:
    _good_run(ws, "good")
    fifo = _good_run(ws, "fifo")
    (fifo / METRICS_FILE).unlink()
    os.mkfifo(fifo / METRICS_FILE)
    zero = _good_run(ws, "zero")
    (zero / RUN_FILE).unlink()
    (zero / RUN_FILE).symlink_to("/dev/zero")
    proc = subprocess.run([*CLI, "runs", str(ws.root)], capture_output=True, timeout=120)
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert set(lines) == {"good", "fifo", "zero"}
    assert "5 rows" in lines["good"]
    assert "metrics.jsonl is a FIFO" in lines["fifo"]
    assert "run.json is a character device" in lines["zero"]


# ------------------------------------------------------------------ hostile JSON lines
def test_deeply_nested_line_is_malformed_with_its_line_number() -> None:
    buf = b'{"step": 0, "a": 1}\n' + DEEP + b'{"step": 2, "a": 3}\n'
    b = parse_lines(buf)
    assert b.n == 2 and b.malformed == 1
    assert b.malformed_examples[0].startswith("line 2:")
    assert list(b.metrics["a"]) == [1.0, 3.0]


def test_deeply_nested_value_of_a_known_key_is_malformed() -> None:
    rows = b"".join(b'{"step": %d, "x": %d}\n' % (i, i) for i in range(10))
    b = parse_lines(rows + DEEP)
    assert b.n == 10 and b.malformed == 1 and b.malformed_examples[0].startswith("line 11:")


def test_deep_line_in_events_is_skipped(ws: Workspace) -> None:
    d = _good_run(ws, "r")
    (d / EVENTS_FILE).write_bytes(DEEP + b'{"kind": "phase", "step": 2}\n')
    rs = RunSeries(d)
    rs.refresh()
    snap = rs.snapshot()
    assert [e.kind for e in snap.events] == ["phase"] and snap.malformed == 1


def test_trainledger_runs_reports_a_deep_line_instead_of_a_traceback(ws: Workspace) -> None:
    d = _good_run(ws, "r")
    with open(d / METRICS_FILE, "ab") as fh:
        fh.write(DEEP)
    proc = subprocess.run([*CLI, "runs", "--json", str(ws.root)], capture_output=True, timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["rows"] == 5 and row["malformed"] == 1


def test_line_with_too_many_keys_is_malformed() -> None:
    wide = json.dumps({f"k{i}": i for i in range(MAX_LINE_KEYS + 1)}).encode()
    b = parse_lines(b'{"step": 0, "a": 1}\n' + wide + b"\n")
    assert b.n == 1 and b.malformed == 1 and b.malformed_examples[0].startswith("line 2:")
    assert set(b.metrics) == {"a"}


_MEASURE = r"""
import resource, sys, json
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a runaway fails, not the machine
from trainledger.engines.metrics.series import RunSeries
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rs = RunSeries(sys.argv[1])
rs.refresh()
s = rs.snapshot()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rss_mb": (after - before) / 1024, "n": s.n, "names": len(s.metrics),
                  "ignored": s.ignored_metrics, "malformed": s.malformed}))
"""


def _measure(run_dir: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(run_dir)], capture_output=True,
                          text=True, timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_forty_thousand_new_metrics_stay_small_and_are_capped(ws: Workspace) -> None:
    d = _good_run(ws, "r", rows=0)
    with open(d / METRICS_FILE, "w") as fh:
        for i in range(40_000):
            fh.write(f'{{"step": {i}, "metric_{i}": {i}.5}}\n')
    got = _measure(d)
    assert got["n"] == 40_000 and got["names"] == MAX_METRICS
    assert got["ignored"] == 40_000 - MAX_METRICS
    assert got["rss_mb"] < 200


def test_a_fifty_megabyte_line_of_three_million_keys_is_malformed(ws: Workspace) -> None:
    d = _good_run(ws, "r", rows=3)
    with open(d / METRICS_FILE, "ab") as fh:
        fh.write(b"{" + b",".join(b'"k%d":1' % i for i in range(3_000_000)) + b"}\n")
        fh.write(b'{"step": 9, "loss": 0.1}\n')
    assert (d / METRICS_FILE).stat().st_size > 30_000_000
    got = _measure(d)
    assert got["n"] == 4 and got["malformed"] == 1 and got["names"] == 1
    assert got["rss_mb"] < 400  # the file itself is read whole: about 50 MB


# ------------------------------------------------------------------ sparse storage
def _write(d: Path, rows: list[dict]) -> None:
    with open(d / METRICS_FILE, "a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)


def test_rare_metric_is_pairs_not_a_column(ws: Workspace) -> None:
    d = _good_run(ws, "r", rows=0)
    _write(d, [{"step": i, "loss": 1.0, **({"val": i / 10} if i % 100 == 0 else {})} for i in range(5000)])
    rs = RunSeries(d)
    rs.refresh()
    snap = rs.snapshot()
    assert isinstance(snap.metrics, MetricMap)
    assert snap.metrics.is_sparse("val") and not snap.metrics.is_sparse("loss")
    x, y = snap.xy("val")
    assert list(x) == list(range(0, 5000, 100)) and np.allclose(y, x / 10)
    col = snap.metrics["val"]
    assert col.shape == (5000,) and col[200] == 20.0 and np.isnan(col[201])
    assert sorted(snap.metrics) == ["loss", "val"]


def test_metric_first_seen_late_becomes_a_column_once_common(ws: Workspace) -> None:
    d = _good_run(ws, "r", rows=0)
    _write(d, [{"step": i, "loss": 1.0} for i in range(4000)])
    rs = RunSeries(d)
    rs.refresh()
    _write(d, [{"step": 4000 + i, "late": float(i)} for i in range(100)])
    rs.refresh()
    s1 = rs.snapshot()
    assert s1.metrics.is_sparse("late") and s1.xy("late")[1].size == 100
    _write(d, [{"step": 4100 + i, "late": float(100 + i)} for i in range(4000)])
    rs.refresh()
    s2 = rs.snapshot()
    assert not s2.metrics.is_sparse("late")
    assert np.array_equal(s2.xy("late")[1], np.arange(4100.0))
    assert s1.xy("late")[1].size == 100  # the older snapshot is unchanged


def test_metric_cap_is_counted_across_refreshes(ws: Workspace) -> None:
    d = _good_run(ws, "r", rows=0)
    _write(d, [{"step": i, f"m{i}": 1.0} for i in range(MAX_METRICS - 2)])
    rs = RunSeries(d)
    rs.refresh()
    _write(d, [{"step": MAX_METRICS + i, f"n{i}": 1.0} for i in range(7)])
    rs.refresh()
    snap = rs.snapshot()
    assert len(snap.metrics) == MAX_METRICS and snap.ignored_metrics == 5
    assert "n0" in snap.metrics and "n1" in snap.metrics and "n2" not in snap.metrics


def test_sparse_metrics_round_trip_through_the_cache(ws: Workspace, monkeypatch) -> None:
    monkeypatch.setattr(series_mod, "CACHE_MIN_ROWS", 1000)
    d = _good_run(ws, "r", rows=0)
    _write(d, [{"step": i, "loss": float(i), **({"rare": -i} if i % 50 == 0 else {})} for i in range(3000)])
    a = RunSeries(d, cache_dir=ws.cache_dir)
    a.refresh()
    b = RunSeries(d, cache_dir=ws.cache_dir)
    result = b.refresh()
    assert result.from_cache and result.cached_rows == 3000
    sa, sb = a.snapshot(), b.snapshot()
    assert sb.metrics.is_sparse("rare")
    for name in ("loss", "rare"):
        assert np.array_equal(sa.xy(name)[1], sb.xy(name)[1])
