"""engines/run_details against real run folders: a tiny trained run, a failed script run, a log that grows.

What the run screen shows comes from here: argv as a command line, every setting, the data
hash then and now (cached by path, size and mtime), checkpoints with sha256 matching their
sidecars, best and last metrics, system figures, timings and ETA, malformed line numbers,
and a log tail that is bounded, follows appends, waits for a line's end and starts over when
the file is replaced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainledger.engines import run_details as rd
from trainledger.engines.metrics.series import RunSeries
from trainledger.engines.workspace import Workspace, init_workspace

LONG_ERROR = "split_size can only be 0 if dimension size is 0, but got dimension size of 7\n" + "\n".join(
    f"  detail line {i}: " + "x" * 90 for i in range(12)
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One real ternary-vae run, one epoch, on the CPU."""
    ws = init_workspace(tmp_path_factory.mktemp("trained") / "ws")
    out = subprocess.run([sys.executable, "-m", "trainledger", "train", "ternary-vae", "--workspace", str(ws.root),
                          "--epochs", "1", "--run-id", "tiny", "--device", "cpu", "--threads", "1",
                          "--name", "tiny run"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return ws


def failing_run(ws: Workspace, run_id: str = "broken", error: str = LONG_ERROR) -> Path:
    """A script run through trainledger.run that logs rows, then raises: a real failed run."""
    code = (
        "import sys\nimport trainledger\nfrom trainledger.engines.metrics.writer import MetricsWriter\n"
        f"with MetricsWriter(sys.argv[1], run_id={run_id!r}, model='script', config={{'epochs': 5, 'lr': 0.1}}) as r:\n"
        "    for i in range(20):\n"
        "        r.log({'train/loss': 1.0 / (i + 1), 'val/acc': i / 20}, step=i, epoch=i / 4)\n"
        f"    raise RuntimeError({error!r})\n"
    )
    subprocess.run([sys.executable, "-c", code, str(ws.root)], capture_output=True, text=True, timeout=60)
    return ws.run_dir(run_id)


def test_a_trained_run_has_its_command_config_data_checkpoints_and_metrics(trained: Workspace) -> None:
    d = rd.gather(trained, "tiny", RunSeries(trained.run_dir("tiny")))
    assert d.info.status == "finished" and d.name == "tiny run"
    assert d.backend == "torch" and d.device == "cpu"
    assert d.command is not None and d.command.startswith("trainledger train ternary-vae")
    assert "--run-id tiny" in d.command and "--name 'tiny run'" in d.command
    config = dict(d.config)
    assert config["epochs"] == "1" and config["lr"] == "0.001" and "model.latent_dim" in config
    assert d.data is not None and d.data.recorded_sha256 and len(d.data.recorded_sha256) == 64
    names = {c.name for c in d.checkpoints}
    assert {"best.safetensors", "last.safetensors"} <= names
    for c in d.checkpoints:
        hashed = rd.hash_checkpoint(c)
        assert hashed.size == c.path.stat().st_size > 0
        if c.name in ("best.safetensors", "last.safetensors"):
            assert hashed.state == "matches", c.name
    metrics = {m.name: m for m in d.metrics}
    val = metrics["val/loss"]
    assert val.direction == "min" and val.best is not None and val.best_step is not None and val.best_epoch == 1
    assert val.last_step == d.timings.last_step
    assert d.timings.steps_per_s and d.timings.steps_per_s > 0 and d.timings.duration and d.timings.eta_s is None
    assert d.system.rows >= 1 and d.system.column("rss_bytes")
    assert [e.kind for e in d.events].count("best") >= 1
    assert d.malformed == (0, ())
    assert d.log_path == trained.state_dir / "logs" / "tiny.log"
    assert any(k.startswith("versions.") for k, _ in d.extra)


def test_a_failed_run_keeps_its_whole_error(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    failing_run(ws)
    d = rd.gather(ws, "broken", RunSeries(ws.run_dir("broken")))
    assert d.info.status == "failed"
    assert d.info.error == f"RuntimeError: {LONG_ERROR}"  # every line, nothing cut
    assert d.command is not None and d.command.startswith("-c ")  # python -c: argv as recorded
    assert {m.name for m in d.metrics} == {"train/loss", "val/acc"}
    acc = next(m for m in d.metrics if m.name == "val/acc")
    assert acc.best == pytest.approx(19 / 20) and acc.best_step == 19 and acc.best_epoch == pytest.approx(4.75)


def test_data_hash_now_against_then_cached_by_size_and_mtime(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    failing_run(ws, "withdata", "boom")
    data = tmp_path / "data.bin"
    data.write_bytes(b"abc" * 1000)
    import hashlib

    sha = hashlib.sha256(data.read_bytes()).hexdigest()
    run_json = ws.run_dir("withdata") / "run.json"
    raw = json.loads(run_json.read_text())
    raw["data"] = {"path": str(data), "kind": "file", "sha256": sha, "bytes": 3000}
    run_json.write_text(json.dumps(raw))
    d = rd.gather(ws, "withdata")
    assert d.data is not None and d.data.path == str(data) and d.data.state == "unhashed"
    hashed = rd.hash_data(d.data)
    assert hashed.sha256 == sha and hashed.state == "matches" and hashed.size == 3000
    st = data.stat()
    assert rd._HASHES[(str(data.absolute()), st.st_size, st.st_mtime_ns)] == sha
    data.write_bytes(b"abd" * 1000)
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    assert rd.hash_data(d.data).state == "changed"
    data.unlink()
    gone = rd.hash_data(d.data)
    assert gone.state == "no file" and gone.problem


def test_a_running_run_has_an_eta(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    folder = ws.run_dir("live")
    folder.mkdir(parents=True)
    now = time.time()
    (folder / "run.json").write_text(json.dumps({"id": "live", "status": "running", "started": now - 100,
                                                 "config": {"epochs": 10}}))  # fmt: skip
    rows = [{"step": s, "epoch": s / 100, "time": now - 100 + s / 10, "loss": 1.0} for s in range(0, 201, 10)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": "abc"}\n')
    d = rd.gather(ws, "live", RunSeries(folder), now=now)
    t = d.timings
    assert t.steps_per_s == pytest.approx(10.0) and t.total_epochs == 10 and t.last_epoch == 2
    assert t.eta_s == pytest.approx(80.0)  # 800 steps left at 10 steps/s
    assert t.duration == pytest.approx(100.0)
    assert d.malformed == (1, (22,))


def test_system_rows_thinned_and_bad_lines_skipped(tmp_path: Path) -> None:
    lines = [json.dumps({"time": i, "cpu_percent": i % 100, "rss_bytes": 1000 + i}) for i in range(1000)]
    lines.insert(5, "not json")
    (tmp_path / "system.jsonl").write_text("\n".join(lines) + "\n" + '{"time": 2000, "cpu')
    s = rd.read_system(tmp_path, points=50)
    assert s.rows == 1000 and len(s.time) == 50 and s.time[0] == 0 and s.time[-1] == 999
    assert not s.column("gpu_util_percent") and not s.from_tail
    tail = rd.read_system(tmp_path, tail_bytes=2000)
    assert tail.from_tail and 0 < tail.rows < 1000


def test_log_tail_bounded_follows_waits_for_line_ends_and_restarts(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    tail = rd.LogTail(log, tail_bytes=1000)
    first = tail.poll()
    assert not first.exists and first.lines == ()
    log.write_bytes(b"".join(b"old line %05d\n" % i for i in range(1000)))  # 15 kB
    chunk = tail.poll()
    assert chunk.exists and chunk.skipped_bytes > 0
    assert chunk.lines[-1] == "old line 00999" and len(chunk.lines) < 80
    assert all(line.startswith("old line ") and len(line) == 14 for line in chunk.lines)  # no cut first line
    with log.open("ab") as fh:
        fh.write(b"epoch 1 \x1b[31mred\x1b[0m\tdone\nprogress 10%\rprogress 100%\nhalf a li")
    chunk = tail.poll()
    assert chunk.lines[1] == "progress 100%" and chunk.lines[0].startswith("epoch 1 \x1b[31mred")
    assert "\t" not in chunk.lines[0]
    with log.open("ab") as fh:
        fh.write(b"ne\n")
    assert tail.poll().lines == ("half a line",)
    assert tail.poll().lines == ()
    log.write_bytes(b"new file\n")  # replaced (truncated)
    chunk = tail.poll()
    assert chunk.reset and chunk.lines == ("new file",)
    log.unlink()
    assert not tail.poll().exists


def test_the_command_line_as_one_would_type_it() -> None:
    argv = ["/x/trainledger/__main__.py", "train", "m", "--name", "a b"]
    assert rd.command_line(argv) == "trainledger train m --name 'a b'"
    assert rd.command_line(["/work/main/engines/training/__main__.py", "ternary-vae", "--epochs", "3"]) == (
        "python -m trainledger.engines.training ternary-vae --epochs 3")
    assert rd.command_line(["train.py", "--lr", "1e-3", "--note", "it's"]) == "train.py --lr 1e-3 --note 'it'\"'\"'s'"
