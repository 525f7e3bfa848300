"""The ternary VAE trainer: real (tiny) training runs, in this process and as subprocesses."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import safetensors.torch
import torch

from tests.engines.conftest import jsonl
from trainledger.engines.training.loop import LoopConfig, Trainer, load_checkpoint
from trainledger.engines.training.ternary_vae import (
    N_OPS,
    TernaryVAEConfig,
    TernaryVAETask,
    all_operations,
    op_codes,
    split_operations,
)
from trainledger.engines.workspace import Workspace, read_run_info

pytestmark = pytest.mark.slow


def small_task(seed: int = 0, phase_epoch: int | None = None) -> TernaryVAETask:
    return TernaryVAETask(TernaryVAEConfig(phase_epoch=phase_epoch, prior_samples=4096), seed=seed)


def train(ws: Workspace, run_id: str, task: TernaryVAETask | None = None, **loop: Any):
    cfg = LoopConfig(**{"epochs": 2, "batch_size": 2048, "log_every": 2, **loop})
    result = Trainer(task or small_task(), cfg, ws, run_id=run_id).run()
    assert result is not None
    return result


def val_rows(run_dir: Path) -> list[dict[str, Any]]:
    return [r for r in jsonl(run_dir / "metrics.jsonl") if "val/loss" in r]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_dataset_is_every_operation_once_and_the_split_is_deterministic() -> None:
    ops = all_operations()
    assert ops.shape == (N_OPS, 9) and set(ops.unique().tolist()) == {-1, 0, 1}
    assert torch.equal(op_codes(ops), torch.arange(N_OPS))
    train_a, val_a = split_operations(seed=3)
    train_b, val_b = split_operations(seed=3)
    assert torch.equal(val_a, val_b) and torch.equal(train_a, train_b)
    assert len(train_a) + len(val_a) == N_OPS and abs(len(val_a) - N_OPS / 10) < 1
    assert not set(op_codes(val_a).tolist()) & set(op_codes(train_a).tolist())
    assert not torch.equal(split_operations(seed=4)[1], val_a)


def test_two_epoch_run_writes_the_run_folder_and_a_verified_best_checkpoint(ws: Workspace) -> None:
    result = train(ws, "two-epochs")
    assert (result.status, result.epochs_done, result.step) == ("finished", 2, 18)

    info = read_run_info(result.run_dir)
    assert (info.status, info.model, info.primary_metric) == ("finished", "ternary-vae", "val/loss")
    assert info.directions["val/loss"] == "min" and info.directions["coverage/hash"] == "max"
    for key in ("epochs", "batch_size", "lr", "seed", "free_bits", "beta_schedule", "patience"):
        assert key in info.config, key
    assert info.config["device"] == "cpu" and info.config["torch_version"] == str(torch.__version__)
    assert info.config["free_bits"] == 0.5

    rows = jsonl(result.run_dir / "metrics.jsonl")
    assert all({"step", "epoch", "time"} <= row.keys() for row in rows)
    train_rows = [r for r in rows if "train/loss" in r]
    assert len(train_rows) == 9  # 18 steps, a row every 2
    for key in ("train/recon", "train/kl", "beta", "lr", "samples_per_s"):
        assert key in train_rows[0], key
    assert 0 < train_rows[0]["epoch"] < 1 < train_rows[-1]["epoch"] <= 2
    vals = val_rows(result.run_dir)
    assert [r["epoch"] for r in vals] == [0, 1, 2]  # a baseline at step 0, then one per epoch
    for key in ("val/recon_acc", "coverage/sampling", "coverage/hash", "latent/active_dims"):
        assert key in vals[-1], key
    assert 0 <= vals[-1]["coverage/hash"] <= vals[-1]["coverage/sampling"] <= 100
    assert 0 <= vals[-1]["latent/active_dims"] <= 16

    events = jsonl(result.run_dir / "events.jsonl")
    best = [e for e in events if e["kind"] == "best"]
    assert best and best[0]["epoch"] == 1 and best[0]["metric"] == "val/loss"

    ckpt = result.run_dir / "checkpoints"
    sidecar = json.loads((ckpt / "best.json").read_text())
    data = (ckpt / "best.safetensors").read_bytes()
    assert sidecar["sha256"] == hashlib.sha256(data).hexdigest()
    assert sidecar["epoch"] == best[-1]["epoch"] and sidecar["step"] == best[-1]["step"]
    assert sidecar["metrics"]["val/loss"] == pytest.approx(best[-1]["value"])
    tensors = safetensors.torch.load_file(ckpt / "best.safetensors")
    model = small_task().build_model()
    model.load_state_dict(tensors)
    assert (ckpt / "last.safetensors").exists() and load_checkpoint(result.run_dir, "last")[1]["epoch"] == 2
    assert not list(ckpt.glob("*.tmp"))


def test_validation_loss_falls_as_it_learns(ws: Workspace) -> None:
    result = train(ws, "learns", epochs=4, batch_size=512, log_every=10)
    vals = val_rows(result.run_dir)
    assert vals[-1]["val/loss"] < vals[1]["val/loss"] < vals[0]["val/loss"]
    assert vals[-1]["val/recon_acc"] > vals[0]["val/recon_acc"]
    assert vals[-1]["coverage/hash"] > vals[0]["coverage/hash"]


def test_phase_change_is_an_event_at_phase_epoch_and_spikes_the_loss(ws: Workspace) -> None:
    result = train(ws, "phase", task=small_task(phase_epoch=2), epochs=3, batch_size=512, log_every=5, lr=2e-3)
    events = jsonl(result.run_dir / "events.jsonl")
    phases = [e for e in events if e["kind"] == "phase"]
    assert len(phases) == 1
    assert phases[0]["epoch"] == 2 and phases[0]["phase"] == "beta-b" and phases[0]["previous"] == "beta-a"
    assert phases[0]["lr"] == pytest.approx(1e-3) and phases[0]["beta"] == pytest.approx(0.6)
    train_rows = [r for r in jsonl(result.run_dir / "metrics.jsonl") if "train/loss" in r]
    before = [r for r in train_rows if r["epoch"] <= 2]
    after = [r for r in train_rows if r["epoch"] > 2]
    assert all(r["lr"] == pytest.approx(2e-3) for r in before)
    assert all(r["lr"] == pytest.approx(1e-3) and r["beta"] == pytest.approx(0.6) for r in after)
    vals = val_rows(result.run_dir)
    assert vals[3]["val/loss"] > 2 * vals[2]["val/loss"]


def test_early_stop_fires_when_the_validation_loss_cannot_improve(ws: Workspace) -> None:
    result = train(ws, "stuck", epochs=20, lr=0.0, patience=2)
    assert result.early_stopped and result.status == "finished" and result.epochs_done == 3
    events = jsonl(result.run_dir / "events.jsonl")
    assert [e["kind"] for e in events] == ["best", "early_stop"]
    assert events[1]["epoch"] == 3 and events[1]["best_epoch"] == 1 and events[1]["patience"] == 2
    assert read_run_info(result.run_dir).status == "finished"
    assert json.loads((result.run_dir / "run.json").read_text())["summary"]["early_stopped"] is True


def trainer_cmd(ws: Workspace, run_id: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "trainledger.engines.training", "ternary-vae", "--workspace", str(ws.root),
            "--run-id", run_id, "--epochs", "50", "--batch-size", "512", "--pace", "50", *extra]  # fmt: skip


def test_sigterm_stops_a_subprocess_run_cleanly(ws: Workspace) -> None:
    proc = subprocess.Popen(trainer_cmd(ws, "term"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        run_dir = ws.run_dir("term")
        wait_for(lambda: any("train/loss" in r for r in _rows(run_dir)), 60, "a train row")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 3, out  # stopped on request (docs/operations.md, exit codes)
    assert out.decode().splitlines()[:2] == ["run term", f"folder {run_dir}"]
    info = read_run_info(run_dir)
    assert info.status == "stopped" and info.ended is not None
    tensors, sidecar = load_checkpoint(run_dir, "last")
    assert sidecar["status"] == "stopped" and tensors
    assert any(e["kind"] == "stopped" and e["reason"] == "SIGTERM" for e in jsonl(run_dir / "events.jsonl"))


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    try:
        return jsonl(run_dir / "metrics.jsonl")
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def test_exit_with_parent_stops_the_trainer_when_its_parent_is_killed(ws: Workspace) -> None:
    middle = textwrap.dedent(
        f"""
        import subprocess, sys, time
        p = subprocess.Popen({trainer_cmd(ws, "orphan", "--exit-with-parent")!r},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(p.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", middle], stdout=subprocess.PIPE)
    trainer_pid = int(parent.stdout.readline())
    try:
        run_dir = ws.run_dir("orphan")
        wait_for(lambda: _rows(run_dir), 60, "the trainer to start")
        parent.kill()
        parent.wait()
        wait_for(lambda: gone(trainer_pid), 10, "the orphaned trainer to exit")
    finally:
        parent.kill()
        if not gone(trainer_pid):
            os.kill(trainer_pid, signal.SIGKILL)
    info = read_run_info(run_dir, check_pid=False)
    assert info.status == "stopped"
    assert any(e.get("reason") == "parent exited" for e in jsonl(run_dir / "events.jsonl"))


class BrokenTask(TernaryVAETask):
    def evaluate(self, model, schedule):  # type: ignore[no-untyped-def]
        raise RuntimeError("evaluation exploded")


def test_an_exception_marks_the_run_failed_with_its_text_and_signals_are_restored(ws: Workspace) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(RuntimeError, match="exploded"):
        Trainer(BrokenTask(TernaryVAEConfig(), seed=0), LoopConfig(epochs=1, batch_size=4096), ws, run_id="boom").run()
    info = read_run_info(ws.run_dir("boom"))
    assert info.status == "failed" and info.error == "RuntimeError: evaluation exploded"
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
