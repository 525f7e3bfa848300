"""The torch and MLX loops keep the same books: one tiny linear model trained on each backend,
its primary metric scripted per epoch (NaN, a tie, a best, then no progress), must leave the
same best events, best pointer, early stop and run.json summary in both run folders."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from tests.engines.conftest import jsonl
from trainledger.engines.training.bookkeeping import BEST_CHECKPOINT
from trainledger.engines.training.checkpoints import CHECKPOINT_DIR
from trainledger.engines.training.loop import LoopConfig, Schedule, Trainer
from trainledger.engines.workspace import Workspace

try:  # MLX is absent on some platforms (no wheel): then only the torch half runs
    import mlx.core  # noqa: F401

    HAVE_MLX = True
except ImportError:  # pragma: no cover - depends on the platform
    HAVE_MLX = False

# epoch 1 NaN (never best), 2 best, 3 a tie (not best), 4 best, 5 and 6 worse: patience 2 stops at 6
SCORES = [math.nan, 0.5, 0.5, 0.7, 0.6, 0.6, 0.9, 0.9]
EXPECTED_BESTS = [(2, 8, 0.5, None), (4, 16, 0.7, 0.5)]  # (epoch, step, value, previous); 4 steps an epoch
CFG = LoopConfig(epochs=len(SCORES), batch_size=16, log_every=2, patience=2, balance_every=0, eval_at_start=False)

rng = np.random.default_rng(0)
X = rng.standard_normal((64, 3)).astype(np.float32)
Y = (X @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)).astype(np.float32)


class _Scripted:
    model_name = "scripted-linear"
    primary_metric = "val/score"
    def __init__(self) -> None:
        self.directions = {"val/score": "max", "val/loss": "min"}
        self.evaluations = 0

    def config(self) -> dict[str, Any]:
        return {}

    def score(self, loss: float) -> dict[str, float]:
        self.evaluations += 1
        return {"val/score": SCORES[self.evaluations - 1], "val/loss": loss}


class TorchTask(_Scripted):
    def build_model(self) -> torch.nn.Module:
        return torch.nn.Linear(3, 1)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> list[tuple[Tensor, Tensor]]:
        order = torch.randperm(len(X), generator=generator)
        x, y = torch.from_numpy(X)[order], torch.from_numpy(Y)[order]
        return list(zip(x.split(batch_size), y.split(batch_size)))

    def schedule(self, epoch: float) -> Schedule:
        return Schedule(phase="only")

    def loss(self, model: torch.nn.Module, batch: Any, schedule: Schedule) -> dict[str, Tensor]:
        x, y = batch
        return {"loss": (model(x) - y).pow(2).mean()}

    def evaluate(self, model: torch.nn.Module, schedule: Schedule) -> dict[str, float]:
        with torch.no_grad():
            return self.score(float((model(torch.from_numpy(X)) - torch.from_numpy(Y)).pow(2).mean()))


class MLXTask(_Scripted):
    def build_model(self) -> Any:
        from mlx import nn

        return nn.Linear(3, 1)

    def train_batches(self, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        data = np.concatenate([X, Y], axis=1)[rng.permutation(len(X))]
        return [data[i : i + batch_size] for i in range(0, len(data), batch_size)]

    def schedule_values(self, epoch: float) -> dict[str, float]:
        return {}

    def loss(self, model: Any, batch: Any) -> dict[str, Any]:
        import mlx.core as mx

        return {"loss": mx.mean(mx.square(model(batch[:, :3]) - batch[:, 3:]))}

    def evaluate(self, model: Any) -> dict[str, float]:
        import mlx.core as mx

        return self.score(float(mx.mean(mx.square(model(mx.array(X)) - mx.array(Y))).item()))


def books(run_dir: Path) -> dict[str, Any]:
    """What each backend must agree on, read back from the run folder."""
    events = jsonl(run_dir / "events.jsonl")
    sidecar = json.loads((run_dir / "checkpoints" / "best.json").read_text())
    blob = (run_dir / "checkpoints" / sidecar["file"]).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == sidecar["sha256"]
    info = json.loads((run_dir / "run.json").read_text())
    bests = [e for e in events if e["kind"] == "best"]
    (stop,) = [e for e in events if e["kind"] == "early_stop"]
    return {
        "kinds": [e["kind"] for e in events],
        "best_keys": sorted({k for e in bests for k in e}),
        "bests": [(e["epoch"], e["step"], e["value"], e["previous"], e["checkpoint"]) for e in bests],
        "early_stop": {k: stop[k] for k in ("epoch", "step", "metric", "patience", "best_epoch")},
        "pointer": (sidecar["file"], sidecar["epoch"], sidecar["step"], sidecar["metrics"]["val/score"]),
        "pointer_keys": sorted(set(sidecar) - {"backend"}),
        "summary": info["summary"],
        "status": info["status"],
        "val_rows": sum("val/score" in r for r in jsonl(run_dir / "metrics.jsonl")),
    }


def test_the_torch_loop_keeps_the_books(ws: Workspace) -> None:
    result = Trainer(TorchTask(), CFG, ws, run_id="torch", monitor=False).run()
    assert result is not None and result.early_stopped and result.epochs_done == 6
    got = books(ws.run_dir("torch"))
    assert got["bests"] == [(*b, f"{CHECKPOINT_DIR}/best.safetensors") for b in EXPECTED_BESTS]
    assert BEST_CHECKPOINT == f"{CHECKPOINT_DIR}/best.safetensors"
    assert got["kinds"] == ["best", "best", "early_stop"]
    assert got["early_stop"] == {"epoch": 6, "step": 24, "metric": "val/score", "patience": 2, "best_epoch": 4}
    assert got["pointer"] == ("best.safetensors", 4, 16, 0.7)
    assert got["summary"]["best"] == {"metric": "val/score", "value": 0.7, "epoch": 4, "step": 16}
    assert got["summary"]["early_stopped"] is True and got["status"] == "finished" and got["val_rows"] == 6


@pytest.mark.skipif(not HAVE_MLX, reason="mlx is not installed (import mlx.core failed)")
def test_torch_and_mlx_runs_keep_the_same_books(ws: Workspace) -> None:
    from trainledger.engines.training.mlx_backend import MLXTrainer

    assert Trainer(TorchTask(), CFG, ws, run_id="torch", monitor=False).run() is not None
    assert MLXTrainer(MLXTask(), CFG, ws, run_id="mlx", monitor=False).run() is not None
    on_torch, on_mlx = books(ws.run_dir("torch")), books(ws.run_dir("mlx"))
    assert on_mlx == on_torch
    assert json.loads((ws.run_dir("mlx") / "checkpoints" / "best.json").read_text())["backend"] == "mlx"
