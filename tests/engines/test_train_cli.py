"""`trainledger train`: real (tiny) runs of the ternary VAE as subprocesses, and its errors."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from trainledger.engines.training import cli as train_cli
from trainledger.engines.training.loop import load_checkpoint
from trainledger.engines.training.models import MODELS
from trainledger.engines.workspace import Workspace, init_workspace, read_run_info

pytestmark = pytest.mark.slow

FAST = ["--batch-size", "2048", "--log-every", "2", "--set", "prior_samples=4096"]


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws")


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainledger", "train", *args]


def run_train(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(train_cmd(*args), capture_output=True, text=True, timeout=timeout)


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_train_records_provenance_then_resume_continues_in_the_same_folder(ws: Workspace) -> None:
    out = run_train("ternary-vae", "--epochs", "2", "--workspace", str(ws.root), "--run-id", "r1", *FAST)
    assert out.returncode == 0, out.stderr
    run_dir = ws.run_dir("r1")
    lines = out.stdout.splitlines()
    # the run id and folder only once the run folder exists
    assert lines[:3] == ["no --data: generated all 3^9 operations (in memory)", "run r1", f"folder {run_dir}"]
    assert "finished at step 18, epoch 2" in out.stdout

    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["model"] == "ternary-vae"
    assert (info["backend"], info["device"]) == ("torch", "cpu")
    assert set(info["versions"]) >= {"python", "torch", "numpy", "safetensors", "trainledger"}
    assert all(info["versions"][k] for k in ("python", "torch", "numpy", "safetensors"))
    from trainledger.engines.training.ternary_vae import all_operations

    expected = hashlib.sha256(all_operations().numpy().tobytes()).hexdigest()
    assert info["data"]["generated"] == "all 3^9 operations" and info["data"]["sha256"] == expected
    assert info["host"] and info["pid"] and info["started"] <= info["ended"]
    assert info["config"]["epochs"] == 2 and info["config"]["model"]["prior_samples"] == 4096

    system = jsonl(run_dir / "system.jsonl")
    assert system and {"time", "cpu_percent", "rss_bytes"} <= system[0].keys()
    train_rows = [r for r in jsonl(run_dir / "metrics.jsonl") if "train/loss" in r]
    assert all({"lr", "samples_per_s", "steps_per_s"} <= r.keys() for r in train_rows)

    out = run_train("--resume", "r1", "--epochs", "4", "--workspace", str(ws.root), timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:3] == ["run r1", f"folder {run_dir}"]
    assert "finished at step 36, epoch 4" in out.stdout
    assert [p.name for p in ws.runs_dir.iterdir()] == ["r1"]

    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["config"]["epochs"] == 4
    assert info["config"]["batch_size"] == 2048 and info["config"]["model"]["prior_samples"] == 4096
    assert len(info["resumes"]) == 1 and info["resumes"][0]["step"] == 18
    rows = jsonl(run_dir / "metrics.jsonl")
    assert [r["epoch"] for r in rows if "val/loss" in r] == [0, 1, 2, 3, 4]
    steps = [r["step"] for r in rows if "train/loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 36 and len(steps) == 18
    events = jsonl(run_dir / "events.jsonl")
    assert any(e["kind"] == "resumed" and e["step"] == 18 for e in events)
    _, sidecar = load_checkpoint(run_dir, "last")
    assert (sidecar["epoch"], sidecar["step"], sidecar["status"]) == (4, 36, "finished")
    assert (run_dir / "checkpoints" / sidecar["trainer_state"]["file"]).exists()


def test_unknown_model_exits_2_listing_the_models(ws: Workspace) -> None:
    out = run_train("no-such-model", "--workspace", str(ws.root), timeout=60)
    assert out.returncode == 2
    assert "unknown model 'no-such-model'" in out.stderr and "ternary-vae" in out.stderr and "lm-base" in out.stderr
    assert "Traceback" not in out.stderr and not list(ws.runs_dir.iterdir())


def test_mlx_backend_is_a_clear_error(ws: Workspace) -> None:
    out = run_train("lvm-lstm", "--backend", "mlx", "--workspace", str(ws.root), timeout=60)
    assert out.returncode == 2
    assert "--backend mlx is not yet supported for lvm-lstm" in out.stderr and "Traceback" not in out.stderr


def test_a_model_whose_module_is_missing_is_a_clear_error(ws: Workspace, monkeypatch, capsys) -> None:
    monkeypatch.setitem(MODELS, "ghost", "trainledger.engines.training.no_such_module:build")
    assert train_cli.main(["ghost", "--workspace", str(ws.root)]) == 2
    err = capsys.readouterr().err
    assert "'ghost' is registered but not available yet" in err


def test_bad_settings_and_existing_runs_are_refused(ws: Workspace, capsys) -> None:
    assert train_cli.main(["ternary-vae", "--workspace", str(ws.root), "--set", "nonsense"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert train_cli.main(["ternary-vae", "--workspace", str(ws.root), "--set", "no_such=1"]) == 2
    assert "no setting 'no_such'" in capsys.readouterr().err
    assert train_cli.main(["--resume", "nope", "--workspace", str(ws.root)]) == 2
    assert "no such run" in capsys.readouterr().err
    live = ws.run_dir("live")
    live.mkdir(parents=True)
    (live / "run.json").write_text(json.dumps({"status": "running", "pid": os.getpid(), "host": socket.gethostname(),
                                               "model": "ternary-vae"}))  # fmt: skip
    assert train_cli.main(["--resume", "live", "--workspace", str(ws.root)]) == 2
    assert "still running" in capsys.readouterr().err


def test_progress_reporters_take_every_kind_of_update(capsys) -> None:
    metrics = {"train/loss": 1.5, "samples_per_s": 100.0}
    for reporter in (train_cli.PlainProgress("val/loss", every=0.0), train_cli.RichProgress("val/loss")):
        reporter("start", {"run_id": "r", "run_dir": Path("."), "epochs": 2, "step": 0, "epoch": 0})
        reporter("train", {"step": 2, "epoch": 0.5, "metrics": metrics, "epochs": 2})
        reporter("val", {"step": 4, "epoch": 1, "metrics": {"val/loss": 0.25}, "epochs": 2})
        reporter("end", {"result": None})
    out = capsys.readouterr().out
    assert "epoch 1/2 step 4 val/loss 0.25" in out and "train/loss 1.5" in out


def test_console_help_lists_train() -> None:
    out = subprocess.run([sys.executable, "-m", "trainledger", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "trainledger train MODEL" in out.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_trainledger_train_cleanly_with_the_stopped_status(ws: Workspace, sig: signal.Signals) -> None:
    """SIGTERM (the console's stop) and Ctrl-C: a last checkpoint, run.json stopped, exit 3."""
    cmd = train_cmd("ternary-vae", "--workspace", str(ws.root), "--run-id", "term", "--epochs", "50",
                    "--batch-size", "512", "--pace", "50", "--set", "prior_samples=4096")  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run_dir = ws.run_dir("term")
    try:
        deadline = time.monotonic() + 60
        while not _has_train_row(run_dir):
            assert time.monotonic() < deadline and proc.poll() is None, "no train row"
            time.sleep(0.05)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == train_cli.EXIT_STOPPED == 3, out
    assert out.splitlines()[1:3] == ["run term", f"folder {run_dir}"] and "stopped at step" in out
    info = read_run_info(run_dir)
    assert info.status == "stopped" and info.ended is not None
    tensors, sidecar = load_checkpoint(run_dir, "last")
    assert sidecar["status"] == "stopped" and tensors
    assert any(e["kind"] == "stopped" and e["reason"] == sig.name for e in jsonl(run_dir / "events.jsonl"))


def _has_train_row(run_dir: Path) -> bool:
    try:
        return any("train/loss" in r for r in jsonl(run_dir / "metrics.jsonl"))
    except (FileNotFoundError, json.JSONDecodeError):
        return False
