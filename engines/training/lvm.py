"""Latent vector models (LVM): predict the next vector of a document from the 5 before it.

Seed 003's four models in miniature: AMN (an attention mixture of the context plus a
residual MLP), GRU, LSTM and a small transformer, all trained on the same .npz format:
context_vectors [N,5,D], target_vectors [N,D], doc_ids [N], positions [N]. The loss is MSE
plus an optional InfoNCE term (off by default, as the note ended up: InfoNCE's magnitude
dwarfed MSE's and its gradient took over). Both weighted terms are returned beside the
total as `term/mse` and `term/infonce`, so the loop can compare their gradient norms.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainledger.engines.training.datasets import (
    DatasetError,
    check_finite,
    load_npz,
    model_device,
    shuffled_batches,
    split_groups,
    task_settings,
    write_npz,
)
from trainledger.engines.training.loop import Schedule
from trainledger.engines.training.models import TaskOptions, datasets_dir

# ----------------------------------------------------------------------------- config
CONTEXT = 5  # context vectors per example
DIM = 64  # demo vector size (the note's GTR-T5 vectors are 768-d)
N_DOCS = 80  # demo documents...
DOC_LEN = 55  # ...of this many vectors: 80 x 50 = 4,000 windows
HIDDEN = 128
MSE_WEIGHT = 1.0
INFONCE_WEIGHT = 0.0  # the note's fix: InfoNCE disabled
INFONCE_TEMPERATURE = 0.07
VAL_FRACTION = 0.2  # of documents
KEYS = ("context_vectors", "target_vectors", "doc_ids", "positions")


# ----------------------------------------------------------------------------- data
def generate(seed: int, n_docs: int = N_DOCS, doc_len: int = DOC_LEN, dim: int = DIM) -> dict[str, np.ndarray]:
    """Documents as smooth walks on the unit sphere: each drifts along its own direction,
    with a little noise, so the next vector is predictable from the last few."""
    rng = np.random.default_rng(seed)
    contexts, targets, doc_ids, positions = [], [], [], []
    for doc in range(n_docs):
        v = rng.standard_normal(dim)
        velocity = rng.standard_normal(dim) * 0.35
        seq = []
        for _ in range(doc_len):
            v = v / np.linalg.norm(v)
            seq.append(v)
            velocity = 0.9 * velocity + 0.1 * rng.standard_normal(dim) * 0.35
            v = v + velocity / math.sqrt(dim) + rng.standard_normal(dim) * 0.02
        seq_arr = np.stack(seq)
        for t in range(CONTEXT, doc_len):
            contexts.append(seq_arr[t - CONTEXT : t])
            targets.append(seq_arr[t])
            doc_ids.append(doc)
            positions.append(t)
    return {
        "context_vectors": np.stack(contexts).astype(np.float32),
        "target_vectors": np.stack(targets).astype(np.float32),
        "doc_ids": np.asarray(doc_ids, dtype=np.int32),
        "positions": np.asarray(positions, dtype=np.int32),
    }


def load(path: Path) -> dict[str, np.ndarray]:
    """Read and check an LVM .npz: every key present, shapes consistent, values finite."""
    arrays = load_npz(path, KEYS)
    ctx, tgt = arrays["context_vectors"], arrays["target_vectors"]
    if ctx.ndim != 3 or ctx.shape[1] != CONTEXT:
        raise DatasetError(f"{path}: key 'context_vectors' must be [N,{CONTEXT},D], got {list(ctx.shape)}")
    n, _, dim = ctx.shape
    if tgt.shape != (n, dim):
        raise DatasetError(f"{path}: key 'target_vectors' must be [{n},{dim}], got {list(tgt.shape)}")
    for key in ("doc_ids", "positions"):
        if arrays[key].shape != (n,):
            raise DatasetError(f"{path}: key {key!r} must be [{n}], got {list(arrays[key].shape)}")
    for key in KEYS:
        check_finite(path, key, arrays[key])
    if n == 0:
        raise DatasetError(f"{path}: key 'context_vectors' holds no examples")
    return arrays


# ----------------------------------------------------------------------------- models
class AMN(nn.Module):
    """Attention mixture: the last vector asks which context vectors matter, their weighted
    mix is the baseline prediction, and an MLP adds a residual correction."""

    def __init__(self, dim: int, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.query = nn.Linear(dim, hidden)
        self.key = nn.Linear(dim, hidden)
        self.position = nn.Parameter(torch.zeros(CONTEXT, hidden))
        self.residual = nn.Sequential(nn.Linear(2 * dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, ctx: Tensor) -> Tensor:
        q = self.query(ctx[:, -1]).unsqueeze(1)  # [B,1,H]
        k = self.key(ctx) + self.position  # [B,5,H]
        weights = torch.softmax((q * k).sum(-1) / math.sqrt(k.shape[-1]), dim=-1)  # [B,5]
        mix = (weights.unsqueeze(-1) * ctx).sum(1)
        return mix + self.residual(torch.cat([mix, ctx[:, -1]], dim=-1))


class Recurrent(nn.Module):
    """A GRU or LSTM over the context; its last output, projected, is the prediction."""

    def __init__(self, dim: int, cell: str, hidden: int = HIDDEN) -> None:
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn(dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, dim)

    def forward(self, ctx: Tensor) -> Tensor:
        outputs, _ = self.rnn(ctx)
        return ctx[:, -1] + self.out(outputs[:, -1])


class TinyTransformer(nn.Module):
    """Two encoder layers over the 5 context vectors (learned positions); the last token predicts."""

    def __init__(self, dim: int, d_model: int = 64, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.inp = nn.Linear(dim, d_model)
        self.position = nn.Parameter(torch.randn(CONTEXT, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(d_model, dim)

    def forward(self, ctx: Tensor) -> Tensor:
        h = self.encoder(self.inp(ctx) + self.position)
        return ctx[:, -1] + self.out(h[:, -1])


ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {
    "amn": lambda dim: AMN(dim),
    "gru": lambda dim: Recurrent(dim, "gru"),
    "lstm": lambda dim: Recurrent(dim, "lstm"),
    "transformer": lambda dim: TinyTransformer(dim),
}


# ----------------------------------------------------------------------------- loss
def info_nce(pred: Tensor, target: Tensor, temperature: float = INFONCE_TEMPERATURE) -> Tensor:
    """Each prediction must pick its own target out of the batch's targets."""
    logits = F.normalize(pred, dim=-1) @ F.normalize(target, dim=-1).T / temperature
    return F.cross_entropy(logits, torch.arange(pred.shape[0], device=pred.device))


def lvm_loss(pred: Tensor, target: Tensor, mse_weight: float, infonce_weight: float) -> dict[str, Tensor]:
    """`loss` = weighted MSE + weighted InfoNCE; `term/...` are those weighted parts."""
    terms = {"term/mse": mse_weight * F.mse_loss(pred, target)}
    if infonce_weight > 0:
        terms["term/infonce"] = infonce_weight * info_nce(pred, target)
    return {"loss": sum(terms.values()), **terms}  # type: ignore[dict-item]


# ----------------------------------------------------------------------------- task
class LVMTask:
    """What the generic loop needs to train one LVM architecture (see loop.Task)."""

    primary_metric = "val/cosine"
    loop_defaults: ClassVar[dict[str, Any]] = {"epochs": 20, "batch_size": 64, "lr": 1e-3, "patience": 5}
    device = "cpu"
    directions: ClassVar[dict[str, str]] = {
        "train/loss": "min",
        "train/term/mse": "min",
        "train/term/infonce": "min",
        "val/loss": "min",
        "val/mse": "min",
        "val/infonce": "min",
        "val/cosine": "max",
    }

    def __init__(self, arch: str, arrays: dict[str, np.ndarray], seed: int, data_path: Path | None = None,
                 mse_weight: float = MSE_WEIGHT, infonce_weight: float = INFONCE_WEIGHT,
                 val_fraction: float = VAL_FRACTION) -> None:  # fmt: skip
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown LVM architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
        self.arch = arch
        self.model_name = f"lvm-{arch}"
        self.seed = seed
        self.data_path = data_path
        self.mse_weight = float(mse_weight)
        self.infonce_weight = float(infonce_weight)
        train_idx, val_idx = split_groups(arrays["doc_ids"], val_fraction, seed)
        # One tensor per example: rows 0-4 are the context, row 5 the target.
        both = np.concatenate([arrays["context_vectors"], arrays["target_vectors"][:, None]], axis=1)
        examples = torch.from_numpy(both.astype(np.float32))
        self.train, self.val = examples[train_idx], examples[val_idx]
        self.dim = int(examples.shape[-1])
        self.n_docs = (len(np.unique(arrays["doc_ids"][train_idx])), len(np.unique(arrays["doc_ids"][val_idx])))

    def config(self) -> dict[str, Any]:
        return {
            "architecture": self.arch,
            "data_path": str(self.data_path) if self.data_path else None,
            "dim": self.dim,
            "context": CONTEXT,
            "loss": {
                "mse_weight": self.mse_weight,
                "infonce_weight": self.infonce_weight,
                "infonce_temperature": INFONCE_TEMPERATURE,
            },
            "split": "by doc_ids (no document in both train and val)",
            "n_train": int(self.train.shape[0]),
            "n_val": int(self.val.shape[0]),
            "train_docs": self.n_docs[0],
            "val_docs": self.n_docs[1],
        }

    def build_model(self) -> nn.Module:
        return ARCHITECTURES[self.arch](self.dim)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> list[Tensor]:
        return shuffled_batches(self.train, batch_size, generator)

    def schedule(self, epoch: float) -> Schedule:
        return Schedule(phase="train", values={"infonce_weight": self.infonce_weight})

    def loss(self, model: nn.Module, batch: Tensor, schedule: Schedule) -> dict[str, Tensor]:
        return lvm_loss(model(batch[:, :CONTEXT]), batch[:, CONTEXT], self.mse_weight, self.infonce_weight)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, schedule: Schedule) -> dict[str, float]:
        val = self.val.to(model_device(model))
        pred, target = model(val[:, :CONTEXT]), val[:, CONTEXT]
        parts = lvm_loss(pred, target, self.mse_weight, self.infonce_weight)
        metrics = {
            "val/loss": float(parts["loss"]),
            "val/mse": float(F.mse_loss(pred, target)),
            "val/cosine": float(F.cosine_similarity(pred, target, dim=-1).mean()),
        }
        if self.infonce_weight > 0:
            metrics["val/infonce"] = float(info_nce(pred, target))
        return metrics


# ----------------------------------------------------------------------------- builders
def _build(arch: str, opts: TaskOptions) -> LVMTask:
    if opts.data is not None:
        path = Path(opts.data)
    else:
        path = datasets_dir(opts.workspace, "lvm") / f"lvm-demo-seed{opts.seed}.npz"
        write_npz(path, generate(opts.seed))
    s = task_settings(f"lvm-{arch}", opts.extra, {"mse_weight": MSE_WEIGHT, "infonce_weight": INFONCE_WEIGHT,
                                                  "val_fraction": VAL_FRACTION})  # fmt: skip
    task = LVMTask(arch, load(path), opts.seed, path, float(s["mse_weight"]), float(s["infonce_weight"]),
                   float(s["val_fraction"]))  # fmt: skip
    task.device = opts.device
    return task


def build_amn(opts: TaskOptions) -> LVMTask:
    return _build("amn", opts)


def build_gru(opts: TaskOptions) -> LVMTask:
    return _build("gru", opts)


def build_lstm(opts: TaskOptions) -> LVMTask:
    return _build("lstm", opts)


def build_transformer(opts: TaskOptions) -> LVMTask:
    return _build("transformer", opts)
