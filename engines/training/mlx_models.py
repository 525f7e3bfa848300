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


# ----------------------------------------------------------------------------- ternary VAE


class MLXTernaryVAE(nn.Module):
    """ternary_vae.TernaryVAE in MLX: 9 digits -> hidden -> (mu, logvar) -> hidden -> 9 x 3 logits."""

    def __init__(self, hidden: int, latent_dim: int, n_digits: int) -> None:
        super().__init__()
        self.n_digits = n_digits
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(nn.Linear(n_digits, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.to_mu = nn.Linear(hidden, latent_dim)
        self.to_logvar = nn.Linear(hidden, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, n_digits * 3),
        )  # fmt: skip

    def encode(self, ops: mx.array) -> tuple[mx.array, mx.array]:
        h = self.encoder(ops.astype(mx.float32))
        return self.to_mu(h), mx.clip(self.to_logvar(h), -10.0, 10.0)

    def decode(self, z: mx.array) -> mx.array:
        return self.decoder(z).reshape(-1, self.n_digits, 3)

    def __call__(self, ops: mx.array, key: mx.array | None = None) -> tuple[mx.array, mx.array, mx.array]:
        mu, logvar = self.encode(ops)
        z = mu + mx.random.normal(mu.shape, key=key) * mx.exp(0.5 * logvar)
        return self.decode(z), mu, logvar


def _vae_loss(
    logits: mx.array, ops: mx.array, mu: mx.array, logvar: mx.array, beta: Any, free_bits: float
) -> dict[str, mx.array]:
    """ternary_vae.vae_loss: summed digit cross-entropy per example + beta * KL with free bits."""
    recon = nn.losses.cross_entropy(logits.reshape(-1, 3), (ops + 1).reshape(-1), reduction="sum") / ops.shape[0]
    kl_per_dim = mx.mean(0.5 * (mx.square(mu) + mx.exp(logvar) - 1.0 - logvar), axis=0)
    kl_charged = mx.sum(mx.maximum(kl_per_dim, free_bits))
    return {"loss": recon + beta * kl_charged, "recon": recon, "kl": mx.sum(kl_per_dim)}


class MLXTernaryVAETask:
    """ternary_vae.TernaryVAETask trained with MLX; wraps the torch task for its settings,
    split and Schedule (beta warm-up, the beta-B phase change with its LR scale)."""

    backend = "mlx"

    def __init__(self, torch_task: Any) -> None:
        from trainledger.engines.training import ternary_vae as tv

        self.tv = tv
        self.base = torch_task
        self.cfg = torch_task.cfg
        self.seed = torch_task.seed
        self.model_name = torch_task.model_name
        self.primary_metric = torch_task.primary_metric
        self.directions = dict(torch_task.directions)
        self.data_path = torch_task.data_path
        self.data_info = torch_task.data_info
        self.train = torch_task.train_ops.numpy().astype(np.int32)
        self.val = torch_task.val_ops.numpy().astype(np.int32)
        self.powers = (3 ** np.arange(tv.N_DIGITS - 1, -1, -1)).astype(np.int64)
        # beta goes into the compiled step as an array (mlx_backend updates it every step)
        self.step_values: dict[str, mx.array] = {"beta": mx.array(0.0)}

    def config(self) -> dict[str, Any]:
        return self.base.config()

    def build_model(self) -> nn.Module:
        return MLXTernaryVAE(self.cfg.hidden, self.cfg.latent_dim, self.tv.N_DIGITS)

    def train_batches(self, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        data = self.train[rng.permutation(self.train.shape[0])]
        return [data[i : i + batch_size] for i in range(0, data.shape[0], batch_size)]

    def schedule(self, epoch: float) -> Any:
        return self.base.schedule(epoch)

    def loss(self, model: nn.Module, batch: mx.array) -> dict[str, mx.array]:
        logits, mu, logvar = model(batch)
        return _vae_loss(logits, batch, mu, logvar, self.step_values["beta"], self.cfg.free_bits)

    def _codes(self, ops: np.ndarray) -> np.ndarray:
        return ((ops.astype(np.int64) + 1) * self.powers).sum(-1)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """ternary_vae.evaluate at the beta in force (the last step's): a fixed key per call,
        so the same model gives the same numbers."""
        cfg = self.cfg
        key, prior_key = mx.random.split(mx.random.key(self.seed + 2))
        val = mx.array(self.val)
        logits, mu, logvar = model(val, key)
        parts = _vae_loss(logits, val, mu, logvar, self.step_values["beta"], cfg.free_bits)
        decoded = mx.argmax(model.decode(mu), axis=-1).astype(mx.int32) - 1
        exact = mx.mean(mx.all(decoded == val, axis=-1).astype(mx.float32))
        active = mx.sum(mx.var(mu, axis=0, ddof=1) > self.tv.ACTIVE_VAR)
        metrics = {"val/loss": parts["loss"], "val/recon": parts["recon"], "val/kl": parts["kl"],
                   "val/recon_acc": exact}  # fmt: skip
        mx.eval(metrics, active)
        out = {k: float(v.item()) for k, v in metrics.items()}
        seen, naive, n = [], 0, int(cfg.prior_samples)
        keys = mx.random.split(prior_key, max(1, -(-n // cfg.sample_batch)))
        for j, start in enumerate(range(0, n, cfg.sample_batch)):
            z = mx.random.normal((min(cfg.sample_batch, n - start), model.latent_dim), key=keys[j])
            codes = self._codes(np.array(mx.argmax(model.decode(z), axis=-1)).astype(np.int64) - 1)
            naive += int(np.unique(codes).size)
            seen.append(codes)
        unique = int(np.unique(np.concatenate(seen)).size) if seen else 0
        n_ops = self.tv.N_OPS
        out["coverage/sampling"] = min(100.0, 100.0 * naive / n_ops)
        out["coverage/hash"] = 100.0 * unique / n_ops
        out["latent/active_dims"] = int(active.item())
        return out


def build_ternary_vae(opts: TaskOptions) -> MLXTernaryVAETask:
    from trainledger.engines.training.ternary_vae import build

    return MLXTernaryVAETask(build(opts))


# the models that run on --backend mlx, by name (a subset of models.MODELS)
def build_san(opts: TaskOptions) -> Any:
    from trainledger.engines.training.mlx_san import build

    return build(opts)


def build_lora_lm(opts: TaskOptions) -> Any:
    from trainledger.engines.training.mlx_lora import build

    return build(opts)


MLX_MODELS: dict[str, Callable[[TaskOptions], Any]] = {
    "lvm-gru": build_lvm_gru,
    "ternary-vae": build_ternary_vae,
    "san": build_san,
    "lora-lm": build_lora_lm,
}
