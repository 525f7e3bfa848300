"""`trainledger train san --backend mlx`: seed 000's SAN model and task in MLX.

The torch SANTask (san.py) stays the one reader of capture files: it loads and checks
the schema-v2 frames, splits by session, and its config() is what run.json records, so
an MLX run carries the same provenance (file sha256s, accepted/rejected counts, split).
This module only adds the MLX model (same architecture and parameter names as san.SAN,
so checkpoints/best.safetensors has the torch state_dict's tensor names and shapes and
the SAN weights exporter reads runs of either backend), the same loss, and evaluation
with the same metric names.

It imports mlx at import time: only the training CLI's MLX path imports it.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np
from mlx import nn

from trainledger.engines.capture.schema import DIMS
from trainledger.engines.training.models import TaskOptions
from trainledger.engines.training.san import HEADS, HIDDEN, SANTask


class MLXSAN(nn.Module):
    """san.SAN in MLX. The trunk is a plain list (not nn.Sequential) and the heads a dict,
    so the flattened names are trunk.0.weight ... heads.<field>.bias, as in torch."""

    def __init__(self, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.trunk = [
            nn.Linear(DIMS, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
        ]
        self.heads = {
            key: nn.Linear(hidden, width) for key, (width, _) in HEADS.items()
        }

    def __call__(self, x: mx.array) -> dict[str, mx.array]:
        h = x
        for layer in self.trunk:
            h = layer(h)
        return {key: self.heads[key](h) for key in HEADS}


def split_targets(rows: mx.array) -> dict[str, mx.array]:
    """The heads' targets of training rows (the 128 inputs first, then HEADS in order)."""
    targets, start = {}, DIMS
    for key, (width, _) in HEADS.items():
        targets[key] = rows[:, start : start + width]
        start += width
    return targets


def _kl_batchmean(logits: mx.array, target: mx.array) -> mx.array:
    """torch's F.kl_div(log_softmax(logits), p, reduction="batchmean"), p normalised as san_loss does."""
    p = mx.maximum(target, 0.0)
    p = p / mx.maximum(mx.sum(p, axis=1, keepdims=True), 1e-8)
    log_q = logits - mx.logsumexp(logits, axis=1, keepdims=True)
    plogp = mx.where(p > 0, p * mx.log(mx.where(p > 0, p, 1.0)), 0.0)
    return mx.sum(plogp - p * log_q) / logits.shape[0]


def san_loss(
    out: dict[str, mx.array], targets: dict[str, mx.array]
) -> dict[str, mx.array]:
    """san.san_loss: `loss` = the sum of the per-head losses (MSE, or KL for gesture_probs)."""
    parts: dict[str, mx.array] = {}
    for key, (_, kind) in HEADS.items():
        if kind == "kl":
            parts[key] = _kl_batchmean(out[key], targets[key])
        else:
            parts[key] = mx.mean(mx.square(out[key] - targets[key]))
    total = parts[next(iter(HEADS))]
    for key in list(HEADS)[1:]:
        total = total + parts[key]
    return {"loss": total, **parts}


class MLXSANTask:
    """san.SANTask trained with MLX: the torch task's data, split and config, as numpy."""

    backend = "mlx"

    def __init__(self, torch_task: SANTask) -> None:
        self.base = torch_task
        self.model_name = torch_task.model_name
        self.primary_metric = torch_task.primary_metric
        self.directions = dict(torch_task.directions)
        self.loop_defaults = dict(torch_task.loop_defaults)
        self.data_path = torch_task.data_path
        self.train = torch_task.train.numpy().astype(np.float32)
        self.val = torch_task.val.numpy().astype(np.float32)

    def config(self) -> dict[str, Any]:
        return self.base.config()

    def build_model(self) -> MLXSAN:
        return MLXSAN()

    def train_batches(
        self, batch_size: int, rng: np.random.Generator
    ) -> list[np.ndarray]:
        data = self.train[rng.permutation(self.train.shape[0])]
        return [data[i : i + batch_size] for i in range(0, data.shape[0], batch_size)]

    def schedule_values(self, epoch: float) -> dict[str, float]:
        return {}

    def loss(self, model: nn.Module, batch: mx.array) -> dict[str, mx.array]:
        return san_loss(model(batch[:, :DIMS]), split_targets(batch))

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """SANTask.evaluate's numbers: val/loss, val/<head>, val/gesture_acc, val/camera_acc."""
        val = mx.array(self.val)
        out, targets = model(val[:, :DIMS]), split_targets(val)
        parts = san_loss(out, targets)
        agree = {key: mx.mean((mx.argmax(out[key], axis=1) == mx.argmax(targets[key], axis=1)).astype(mx.float32))
                 for key in ("gesture_probs", "camera_scores")}  # fmt: skip
        metrics = {"val/loss": parts["loss"], **{f"val/{key}": parts[key] for key in HEADS},
                   "val/gesture_acc": agree["gesture_probs"], "val/camera_acc": agree["camera_scores"]}  # fmt: skip
        mx.eval(metrics)
        return {k: float(v.item()) for k, v in metrics.items()}


def build(opts: TaskOptions) -> MLXSANTask:
    """The MLX san task for `opts`: san.build's data (given, or the demo capture) and split."""
    from trainledger.engines.training.san import build as build_torch

    return MLXSANTask(build_torch(opts))
