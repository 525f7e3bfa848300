"""`trainledger train MODEL --nproc 2`: two DDP ranks on CPU (gloo) under torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from trainledger.engines.training.distributed import launch_command, strip_nproc
from trainledger.engines.workspace import Workspace, init_workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws")


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def env() -> dict[str, str]:
    return {**os.environ, "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainledger", "train", *args]


def test_launch_command_drops_nproc_and_fixes_the_run_id() -> None:
    argv = ["lvm-gru", "--nproc", "2", "--epochs", "2", "--run-id", "x", "--nproc=3"]
    assert strip_nproc(argv) == ["lvm-gru", "--epochs", "2"]
    cmd = launch_command(argv, 2, "r1")
    assert cmd[1:7] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m"]
    assert cmd[-5:] == ["lvm-gru", "--epochs", "2", "--run-id", "r1"]


@pytest.mark.slow
def test_two_ranks_train_one_run_folder(ws: Workspace) -> None:
    out = subprocess.run(
        train_cmd("lvm-gru", "--nproc", "2", "--epochs", "2", "--workspace", str(ws.root), "--threads", "1",
                  "--log-every", "5"),
        capture_output=True, text=True, timeout=120, env=env(),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    runs = [p for p in (ws.root / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1
    run_dir = runs[0]
    assert out.stdout.splitlines()[0] == f"run {run_dir.name}"
    assert "finished at step" in out.stdout

    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished"
    assert info["config"]["world_size"] == 2 and info["config"]["dist_backend"] == "gloo"
    rows = jsonl(run_dir / "metrics.jsonl")
    train = [r for r in rows if "samples_per_s" in r]
    assert train and all(r["samples_per_s"] > 0 for r in train)
    val = [r for r in rows if "val/loss" in r]
    assert [r["epoch"] for r in val] == [0, 1, 2]  # the start row and one per epoch, from rank 0 only
    assert val[-1]["val/loss"] < val[0]["val/loss"]
    # 3,200-odd train windows / 64 per batch = 50 batches an epoch, 25 on each rank
    assert val[1]["step"] == 25 and val[2]["step"] == 50
    assert (run_dir / "checkpoints" / "best.safetensors").exists()
    assert (run_dir / "checkpoints" / "best.json").exists()
    assert (run_dir / "system.jsonl").exists()


@pytest.mark.slow
def test_sigterm_to_rank_0_stops_every_rank(ws: Workspace) -> None:
    proc = subprocess.Popen(
        train_cmd("lvm-gru", "--nproc", "2", "--epochs", "500", "--patience", "0", "--workspace", str(ws.root),
                  "--run-id", "s1", "--pace", "20", "--threads", "1"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
    )  # fmt: skip
    run_json = ws.run_dir("s1") / "run.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (run_json.exists() and (ws.run_dir("s1") / "metrics.jsonl").exists()):
        time.sleep(0.2)
    time.sleep(1.5)
    pid = json.loads(run_json.read_text())["pid"]  # rank 0, as the console sees it
    assert pid != proc.pid
    os.kill(pid, signal.SIGTERM)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 3, stdout + stderr  # EXIT_STOPPED, as for one process
    info = json.loads(run_json.read_text())
    assert info["status"] == "stopped"
    assert any(e["kind"] == "stopped" for e in jsonl(ws.run_dir("s1") / "events.jsonl"))


@pytest.mark.slow
def test_resume_on_two_ranks_continues_the_same_run(ws: Workspace) -> None:
    common = ("--workspace", str(ws.root), "--threads", "1", "--log-every", "5", "--nproc", "2")
    first = subprocess.run(train_cmd("lvm-gru", "--epochs", "2", "--run-id", "d1", *common),
                           capture_output=True, text=True, timeout=120, env=env())  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    rows_before = jsonl(ws.run_dir("d1") / "metrics.jsonl")
    last_step = max(r["step"] for r in rows_before)
    again = subprocess.run(train_cmd("--resume", "d1", "--epochs", "4", *common),
                           capture_output=True, text=True, timeout=120, env=env())  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    info = json.loads((ws.run_dir("d1") / "run.json").read_text())
    assert info["status"] == "finished" and info["config"]["world_size"] == 2
    assert [r["step"] for r in info["resumes"]] == [last_step]
    rows = jsonl(ws.run_dir("d1") / "metrics.jsonl")
    assert rows[: len(rows_before)] == rows_before  # appended to, never rewritten
    later = [r["step"] for r in rows[len(rows_before) :]]
    assert later and min(later) > last_step and max(r["epoch"] for r in rows) == 4
    assert [p.name for p in ws.root.joinpath("runs").iterdir()] == ["d1"]
