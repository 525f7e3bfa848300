"""A frozen registry for the Versions pane's tests and snapshots, built through the real store.

Three models over the frozen fixture workspace's runs, each step at a fixed time
(`Registry(ws, clock=lambda: t)`), with small safetensors files written by
safetensors.numpy (no torch in console tests):

- ternary-vae: v1 (the last epoch, not the best) promoted, v2 (the best, epoch 6) promoted so
  v1 is the rollback target, v3 on canary at 10 %;
- lvm-amn: v1 and v2 promoted, rolled back to v1 (v2 rolled back), v3 canary aborted
  ("aborted, serving v1");
- san-motion: from folders, v1 active, v2 whose bytes were changed afterwards (corrupt, ✖).

The audit's user and host are rewritten to fixed names so snapshots do not depend on the
machine that built them.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from trainledger.engines.registry.store import Registry
from trainledger.engines.registry.types import Candidate, Check, SourceFile
from trainledger.engines.workspace import Workspace

NOW = 1_795_430_000.0 + 3600.0  # conftest.CLOCK: the frozen workspace's "now"
START = NOW - 3 * 86400
USER, HOST = "alice", "lab-1"
CHECKS = (
    Check("files exist", True, "1 file"),
    Check("size", True, "within 1 KB..2 GB"),
    Check("format", True, "safetensors"),
    Check("load and probe", True, "not run (fixture)", skipped=True),
)


def weights(path: Path, seed: int, n: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"w": (np.arange(n, dtype=np.float32) * 0.01 + seed), "b": np.full(4, seed, dtype=np.float32)},
              str(path))  # fmt: skip
    return path


def run_candidate(src: Path, run_id: str, kind: str, seed: int, *, epoch: int, last_epoch: int, best: bool,
                  metrics: dict[str, float]) -> Candidate:  # fmt: skip
    f = weights(src / f"{run_id}-{seed}.safetensors", seed)
    return Candidate(
        kind=kind, files=(SourceFile("model.safetensors", f),), source=f"run {run_id}, checkpoint "
        f"{'best' if best else 'last'}", run_id=run_id, checkpoint="best" if best else "last", epoch=epoch,
        step=epoch * 50, is_best=best, is_last=epoch == last_epoch, last_epoch=last_epoch, training_samples=5408,
        metrics=metrics, dataset_path=f"data/{kind}.jsonl", dataset_sha256=f"{seed:02d}" * 32,
        reproduce=f"trainledger train {kind} --epochs {last_epoch} --seed {seed} --set lr=0.001",
    )  # fmt: skip


def folder_candidate(src: Path, name: str, seed: int) -> Candidate:
    f = weights(src / name / "san_weights.safetensors", seed, n=128)
    return Candidate(kind="san", files=(SourceFile("san_weights.safetensors", f),), source=f"folder {name}")


class Steps:
    """One Registry per step, each at its own fixed time, a minute apart."""

    def __init__(self, ws: Workspace, start: float = START) -> None:
        self.ws = ws
        self.t = start

    def __call__(self) -> Registry:
        self.t += 60.0
        t = self.t
        return Registry(self.ws, clock=lambda: t)


def tamper(ws: Workspace, sha256: str) -> Path:
    """Change one byte of a registered artifact (it is stored read-only)."""
    with Registry(ws) as reg:
        path = reg.blob_path(sha256)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.chmod(path, 0o444)
    return path


def build_registry(ws: Workspace) -> Workspace:
    """Fill `ws`'s registry as the module docstring says; returns `ws`."""
    src = ws.root / "exports"
    step = Steps(ws)
    tv = "ternary-vae"
    ops = [
        lambda r: r.deploy(tv, run_candidate(src, "ternary-v5-5", tv, 1, epoch=106, last_epoch=106, best=False,
                           metrics={"val/loss": 0.092}), checks=CHECKS, reason="the last epoch"),
        lambda r: r.promote(tv, "v1", reason="first version"),
        lambda r: r.deploy(tv, run_candidate(src, "ternary-v5-5", tv, 2, epoch=6, last_epoch=106, best=True,
                           metrics={"val/loss": 0.028, "coverage": 0.86}), checks=CHECKS, reason="the best epoch"),
        lambda r: r.canary(tv, "v2", 10, reason="try the best epoch"),
        lambda r: r.promote(tv, "v2", reason="canary healthy for 1 h"),
        lambda r: r.deploy(tv, run_candidate(src, "ternary-v5-5", tv, 3, epoch=8, last_epoch=106, best=True,
                           metrics={"val/loss": 0.027}), checks=CHECKS),
        lambda r: r.canary(tv, "v3", 10, reason="a better best"),
        lambda r: r.deploy("lvm-amn", run_candidate(src, "lvm-amn-mse", "lvm", 4, epoch=20, last_epoch=20,
                           best=True, metrics={"val/cosine": 0.71}), checks=CHECKS),
        lambda r: r.promote("lvm-amn", "v1"),
        lambda r: r.deploy("lvm-amn", run_candidate(src, "lvm-amn-infonce", "lvm", 5, epoch=18, last_epoch=20,
                           best=True, metrics={"val/cosine": 0.78}), checks=CHECKS),
        lambda r: r.promote("lvm-amn", "v2", reason="higher cosine"),
        lambda r: r.rollback("lvm-amn", reason="InfoNCE 32x the MSE: answers drifted"),
        lambda r: r.deploy("lvm-amn", run_candidate(src, "lvm-amn-infonce", "lvm", 6, epoch=20, last_epoch=20,
                           best=False, metrics={"val/cosine": 0.74}), checks=CHECKS),
        lambda r: r.canary("lvm-amn", "v3", 25),
        lambda r: r.abort("lvm-amn", reason="p95 latency 6,200 ms > 5,000 ms"),
        lambda r: r.deploy("san-motion", folder_candidate(src, "san-v5", 7), checks=CHECKS[:3]),
        lambda r: r.promote("san-motion", "v1", reason="the app ships it"),
        lambda r: r.deploy("san-motion", folder_candidate(src, "san-v6", 8), checks=CHECKS[:3]),
    ]  # fmt: skip
    for op in ops:
        with step() as reg:
            op(reg)
    with step() as reg:
        corrupt = reg.version("san-motion", "v2").artifacts[0].sha256
    tamper(ws, corrupt)
    with step() as reg:
        reg.verify("san-motion", reason="nightly")
    freeze_people(ws)
    return ws


def freeze_people(ws: Workspace) -> None:
    """Fixed user and host in every audit entry (real SQL on the real database)."""
    conn = sqlite3.connect(ws.registry_dir / "registry.db")
    try:
        with conn:
            conn.execute("UPDATE audit SET user = ?, host = ?", (USER, HOST))
    finally:
        conn.close()


def add_checkpoints(ws: Workspace, run_id: str, best_epoch: int, last_epoch: int) -> None:
    """checkpoints/best and last (safetensors + sidecar) in a run folder, as the trainer writes them."""
    import hashlib
    import json

    folder = ws.run_dir(run_id) / "checkpoints"
    for tag, epoch, seed in (("best", best_epoch, 11), ("last", last_epoch, 12)):
        path = weights(folder / f"{tag}.safetensors", seed)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        (folder / f"{tag}.json").write_text(json.dumps({"file": path.name, "sha256": sha, "epoch": epoch,
                                                        "step": epoch * 50, "metrics": {"val/loss": 0.03}}))
