"""MLX versions of the models that `trainledger train --backend mlx` can run.

Each MLX task reuses its torch twin's data code (generation, loading, the split by
document), holds the examples as numpy arrays, and gives mlx_backend.MLXTrainer what
loop.Task gives the torch Trainer: config, build_model, batches, loss and evaluate.
Only the models in MLX_MODELS run on MLX; the CLI keeps a clear error for the others.

This module imports mlx at import time: only the training CLI's MLX path imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx
import numpy as np
from mlx import nn
from trainledger.engines.training.models import TaskOptions

# ----------------------------------------------------------------------------- LVM


class MLXRecurrentGRU(nn.Module):
    """lvm.Recurrent("gru") in MLX: a GRU over the context; its last output, projected and
    added to the last context vector, is the prediction."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.rnn = nn.GRU(dim, hidden)
        self.out = nn.Linear(hidden, dim)

    def __call__(self, ctx: mx.array) -> mx.array:
        outputs = self.rnn(ctx)  # [B,L,H]
        return ctx[:, -1] + self.out(outputs[:, -1])


def _mse(pred: mx.array, target: mx.array) -> mx.array:
    return mx.mean(mx.square(pred - target))


def _normalize(x: mx.array, eps: float = 1e-12) -> mx.array:
    return x / mx.maximum(mx.linalg.norm(x, axis=-1, keepdims=True), eps)


def _info_nce(pred: mx.array, target: mx.array, temperature: float) -> mx.array:
    logits = _normalize(pred) @ _normalize(target).T / temperature
    return nn.losses.cross_entropy(logits, mx.arange(pred.shape[0]), reduction="mean")


class MLXLVMTask:
    """An LVM task (see lvm.LVMTask) trained with MLX; wraps the torch task for its data
    and settings, so both backends see the very same split."""

    backend = "mlx"

    def __init__(self, torch_task: Any) -> None:
        from trainledger.engines.training import lvm

        self.base = torch_task
        self.arch = torch_task.arch
        self.model_name = torch_task.model_name
        self.primary_metric = torch_task.primary_metric
        self.directions = dict(torch_task.directions)
        self.loop_defaults = dict(torch_task.loop_defaults)
        self.data_path = torch_task.data_path
        self.mse_weight = torch_task.mse_weight
        self.infonce_weight = torch_task.infonce_weight
        self.temperature = lvm.INFONCE_TEMPERATURE
        self.context = lvm.CONTEXT
        self.hidden = lvm.HIDDEN
        self.dim = torch_task.dim
        self.train = torch_task.train.numpy().astype(np.float32)
        self.val = torch_task.val.numpy().astype(np.float32)

    def config(self) -> dict[str, Any]:
        return self.base.config()

    def build_model(self) -> nn.Module:
        if self.arch != "gru":
            raise NotImplementedError(f"lvm-{self.arch} has no MLX version yet")
        return MLXRecurrentGRU(self.dim, self.hidden)

    def train_batches(self, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        order = rng.permutation(self.train.shape[0])
        data = self.train[order]
        return [data[i : i + batch_size] for i in range(0, data.shape[0], batch_size)]

    def schedule_values(self, epoch: float) -> dict[str, float]:
        return {"infonce_weight": self.infonce_weight}

    def loss(self, model: nn.Module, batch: mx.array) -> dict[str, mx.array]:
        pred, target = model(batch[:, : self.context]), batch[:, self.context]
        terms = {"term/mse": self.mse_weight * _mse(pred, target)}
        if self.infonce_weight > 0:
            terms["term/infonce"] = self.infonce_weight * _info_nce(pred, target, self.temperature)
        total = terms["term/mse"]
        if "term/infonce" in terms:
            total = total + terms["term/infonce"]
        return {"loss": total, **terms}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        val = mx.array(self.val)
        pred, target = model(val[:, : self.context]), val[:, self.context]
        parts = self.loss_from(pred, target)
        cosine = mx.mean(mx.sum(_normalize(pred, 1e-8) * _normalize(target, 1e-8), axis=-1))
        metrics = {"val/loss": parts["loss"], "val/mse": _mse(pred, target), "val/cosine": cosine}
        if self.infonce_weight > 0:
            metrics["val/infonce"] = _info_nce(pred, target, self.temperature)
        mx.eval(metrics)
        return {k: float(v.item()) for k, v in metrics.items()}

    def loss_from(self, pred: mx.array, target: mx.array) -> dict[str, mx.array]:
        total = self.mse_weight * _mse(pred, target)
        if self.infonce_weight > 0:
            total = total + self.infonce_weight * _info_nce(pred, target, self.temperature)
        return {"loss": total}


def build_lvm_gru(opts: TaskOptions) -> MLXLVMTask:
    from trainledger.engines.training.lvm import build_gru

    return MLXLVMTask(build_gru(opts))


# the models that run on --backend mlx, by name (a subset of models.MODELS)
MLX_MODELS: dict[str, Callable[[TaskOptions], Any]] = {
    "lvm-gru": build_lvm_gru,
}
